"""Conformance checks for plugin authors."""
