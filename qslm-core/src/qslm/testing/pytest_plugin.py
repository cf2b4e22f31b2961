"""pytest plugin of qslm-core (entry point ``pytest11``): conformance checks for plugin authors."""
