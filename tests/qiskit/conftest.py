"""Fixtures for the Qiskit backend's tests: no real IBM credentials, no network.

Every test runs with QISKIT_IBM_TOKEN unset and an empty home folder, so a developer's own
token or saved account can never be used or leak into a test.
"""

from __future__ import annotations

import pytest

FAKE_TOKEN = "qslm-fake-ibm-token-5f2c9a7e13b04d68"


@pytest.fixture(autouse=True)
def isolated_ibm_config(tmp_path, monkeypatch):
    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def fake_token(monkeypatch):
    """A token in the environment that is valid nowhere."""
    monkeypatch.setenv("QISKIT_IBM_TOKEN", FAKE_TOKEN)
    return FAKE_TOKEN
