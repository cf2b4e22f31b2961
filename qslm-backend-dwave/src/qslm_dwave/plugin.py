"""The qslm plugin module of qslm-backend-dwave.

Entry point: ``qslm = "dwave = qslm_dwave.plugin"``.

Its components are added by their own issue; until then it registers none, and
``qslm plugins`` lists the plugin with no hooks.
"""
