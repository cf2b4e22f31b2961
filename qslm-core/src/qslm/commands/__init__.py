"""The ``qslm`` commands, one module per family; :mod:`qslm.commands.plugin` adds them to the
group through ``qslm_register_commands``, the hook plugins use for theirs."""
