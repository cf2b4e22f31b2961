"""The qslm plugin module of qslm-backend-qiskit.

Entry point: ``qslm = "qiskit = qslm_qiskit.plugin"``.

Its components are added by their own issue; until then it registers none, and
``qslm plugins`` lists the plugin with no hooks.
"""
