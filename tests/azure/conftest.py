"""Fixtures for the Azure backend's tests: no real Azure credentials, a fake Azure Quantum
service on 127.0.0.1 speaking the REST API the real azure-quantum client uses.

Every test runs with the Azure variables unset and an empty home folder, so a developer's own
connection string, service principal or `az login` can never be used or leak into a test.
"""

from __future__ import annotations

import pytest

AZURE_VARS = (
    "AZURE_QUANTUM_CONNECTION_STRING",
    "AZURE_QUANTUM_SUBSCRIPTION_ID",
    "AZURE_QUANTUM_WORKSPACE_RG",
    "AZURE_QUANTUM_WORKSPACE_NAME",
    "AZURE_QUANTUM_WORKSPACE_LOCATION",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
    "AZURE_CONFIG_DIR",
)


@pytest.fixture(autouse=True)
def isolated_azure_config(tmp_path, monkeypatch):
    for name in AZURE_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("QDK_PYTHON_TELEMETRY", "none")
    return home


@pytest.fixture
def fake(monkeypatch):
    """A running fake service whose connection string is in the environment."""
    from qslm_azure.testing import FakeAzureQuantum

    with FakeAzureQuantum() as service:
        monkeypatch.setenv("AZURE_QUANTUM_CONNECTION_STRING", service.connection_string)
        yield service


@pytest.fixture
def make(fake):
    """``make("azure.ionq", **options)``: a registered solver pointed at the fake."""
    from qslm.plugins import get_registry
    from qslm_azure.testing import FAST_OPTIONS

    def build(name: str, **options):
        cls = get_registry().get("qubo_solver", name).load()
        return cls(cls.Options(**{**FAST_OPTIONS, "endpoint": fake.url, **options}))

    return build
