"""qslm-backend-dwave installs beside qslm-core alone and registers through its entry point."""

from __future__ import annotations

from qslm.testing import check_listing_is_light, check_plugin_listed


def test_plugin_is_found_through_its_entry_point():
    check_plugin_listed("dwave", "qslm-backend-dwave")


def test_listing_does_not_import_the_backend_sdk():
    check_listing_is_light()
