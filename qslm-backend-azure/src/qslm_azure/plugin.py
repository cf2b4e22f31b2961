"""The qslm plugin module of qslm-backend-azure.

Entry point: ``qslm = "azure = qslm_azure.plugin"``.

Its components are added by their own issue; until then it registers none, and
``qslm plugins`` lists the plugin with no hooks.
"""
