"""The qslm plugin module of qslm-unsloth.

Entry point: ``qslm = "unsloth = qslm_unsloth.plugin"``.

Its components are added by their own issue; until then it registers none, and
``qslm plugins`` lists the plugin with no hooks.
"""
