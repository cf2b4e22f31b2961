"""The Azure Quantum workspace: where its credentials come from, and opening it without any
interactive login.

Two ways, checked in this order, both read from the environment or the options only:

1. ``AZURE_QUANTUM_CONNECTION_STRING`` (the portal's *Operations > Access keys* string); the
   workspace is built with ``Workspace.from_connection_string``, which contacts nothing.
2. subscription, resource group, workspace name and location (options, else the SDK's own
   variables ``AZURE_QUANTUM_SUBSCRIPTION_ID``, ``AZURE_QUANTUM_WORKSPACE_RG``,
   ``AZURE_QUANTUM_WORKSPACE_NAME``, ``AZURE_QUANTUM_WORKSPACE_LOCATION``) with a
   non-interactive Azure credential: a service principal (``AZURE_CLIENT_ID``,
   ``AZURE_TENANT_ID`` and ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH``), a
   managed identity, or an ``az login`` session. Only the kinds whose traces are present are
   chained, so a missing one never waits on a network probe.

The SDK's own default (``DefaultAzureCredential`` with the interactive browser *enabled*) is
never used: qslm always passes a credential. Keys, secrets and SAS signatures are scrubbed
from every message and from the SDK's log records (:func:`redact`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qslm.api import ConfigError, MissingCredentials
from qslm.secrets import Redactor

CONNECTION_ENV = "AZURE_QUANTUM_CONNECTION_STRING"
WORKSPACE_ENV = {
    "subscription_id": "AZURE_QUANTUM_SUBSCRIPTION_ID",
    "resource_group": "AZURE_QUANTUM_WORKSPACE_RG",
    "workspace": "AZURE_QUANTUM_WORKSPACE_NAME",
    "location": "AZURE_QUANTUM_WORKSPACE_LOCATION",
}
SECRET_ENV = (CONNECTION_ENV, "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD")

HOW_TO_PROVIDE = (
    f"set {CONNECTION_ENV} to the workspace's connection string (Azure portal: the workspace > "
    "Operations > Access keys), or give subscription_id, resource_group, workspace and "
    "location (options or the AZURE_QUANTUM_* variables) together with a service principal "
    "(AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET), a managed identity, or "
    "`az login`"
)

_PATTERNS = (
    re.compile(r"(?i)(ApiKey=)[^;\s]+"),
    re.compile(r"(?i)(\bsig=)[^&\s\"']+"),
    re.compile(r"(?i)(x-ms-quantum-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
)
_redactor = Redactor(SECRET_ENV, _PATTERNS)


def redact(text: str) -> str:
    """``text`` with keys, client secrets and SAS signatures replaced by ``***``."""
    return _redactor.redact(text)


def no_sdk_telemetry() -> None:
    """Keep the Q# toolkit, which azure-quantum's Qiskit modules import, from starting its
    telemetry upload thread; a user who set the variable keeps their choice."""
    os.environ.setdefault("QDK_PYTHON_TELEMETRY", "none")


def redact_sdk_logs() -> None:
    """Scrub the same secrets from the log records of the Azure SDK, of urllib3 beneath it
    (which logs each request's URL, SAS signature included, at DEBUG) and of this package."""
    _redactor.scrub_logs("azure", "urllib3", "qslm_azure")


@dataclass(frozen=True)
class WorkspaceSource:
    """How the workspace will be opened, in words (``where``), and what is needed to do it.
    ``repr`` never shows the connection string."""

    where: str
    connection_string: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    location: str | None = None
    credential_kinds: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"WorkspaceSource(where={self.where!r})"


def _azure_cli_logged_in() -> bool:
    config = Path(os.environ.get("AZURE_CONFIG_DIR") or Path.home() / ".azure")
    return (config / "msal_token_cache.json").is_file() or (
        config / "msal_token_cache.bin"
    ).is_file()


def credential_kinds() -> tuple[str, ...]:
    """The non-interactive credentials whose traces are present (no network use)."""
    kinds = []
    env = os.environ
    secret = env.get("AZURE_CLIENT_SECRET") or env.get("AZURE_CLIENT_CERTIFICATE_PATH")
    if env.get("AZURE_CLIENT_ID") and env.get("AZURE_TENANT_ID") and secret:
        kinds.append("service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID)")
    if env.get("IDENTITY_ENDPOINT") or env.get("MSI_ENDPOINT"):
        kinds.append("managed identity")
    if _azure_cli_logged_in():
        kinds.append("Azure CLI login")
    return tuple(kinds)


def find_workspace(
    *,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    workspace: str | None = None,
    location: str | None = None,
) -> WorkspaceSource | None:
    """Where the workspace and its credentials come from, or None when nothing is set.
    Reads the environment and the options only. A malformed connection string is a
    :class:`ConfigError` that never quotes it."""
    connection = os.environ.get(CONNECTION_ENV, "").strip()
    if connection:
        _redactor.remember(connection)
        for match in re.finditer(r"(?i)ApiKey=([^;\s]+)", connection):
            _redactor.remember(match.group(1))
        no_sdk_telemetry()
        from azure.quantum._workspace_connection_params import WorkspaceConnectionParams

        try:
            params = WorkspaceConnectionParams(connection_string=connection)
        except Exception as exc:  # the SDK's ValueError quotes the string: never shown
            raise ConfigError(
                f"{CONNECTION_ENV} is not a valid Azure Quantum connection string "
                f"({type(exc).__name__}); copy it again from the workspace's Access keys page"
            ) from None
        return WorkspaceSource(
            where=f"the connection string in {CONNECTION_ENV}",
            connection_string=connection,
            subscription_id=params.subscription_id,
            resource_group=params.resource_group,
            workspace=params.workspace_name,
            location=params.location,
        )
    given = {
        "subscription_id": subscription_id,
        "resource_group": resource_group,
        "workspace": workspace,
        "location": location,
    }
    values = {k: v or os.environ.get(WORKSPACE_ENV[k]) or None for k, v in given.items()}
    if not any(values.values()):
        return None
    missing = [k for k, v in values.items() if not v]
    if missing:
        names = ", ".join(f"{k} (or {WORKSPACE_ENV[k]})" for k in missing)
        raise ConfigError(f"Azure Quantum workspace: missing {names}; {HOW_TO_PROVIDE}")
    kinds = credential_kinds()
    if not kinds:
        return None
    return WorkspaceSource(
        where=f"workspace {values['workspace']!r} ({values['location']}) with "
        + " or ".join(kinds),
        credential_kinds=kinds,
        **values,
    )


def require_workspace(solver: str, **options: str | None) -> WorkspaceSource:
    """The workspace's source, or :class:`MissingCredentials` at once (nothing sent)."""
    redact_sdk_logs()
    source = find_workspace(**options)
    if source is None:
        raise MissingCredentials(
            f"{solver}: no Azure Quantum workspace credentials: {CONNECTION_ENV} is not set "
            f"and no workspace with a non-interactive Azure credential was found; "
            f"{HOW_TO_PROVIDE}. Nothing was sent to Azure."
        )
    return source


def describe_workspace(**options: str | None) -> str:
    """One line for ``qslm validate``."""
    try:
        source = find_workspace(**options)
    except ConfigError as exc:
        return f"workspace: {exc}"
    if source is None:
        return (
            "workspace: no credentials found, so this solver fails at once (a fallback solver, "
            f"if any, runs instead); set {CONNECTION_ENV} or see the README"
        )
    return f"workspace: {source.where}"


def _non_interactive_credential(kinds: tuple[str, ...]) -> Any:
    from azure.identity import (
        AzureCliCredential,
        ChainedTokenCredential,
        EnvironmentCredential,
        ManagedIdentityCredential,
    )

    chain = []
    for kind in kinds:
        if kind.startswith("service principal"):
            chain.append(EnvironmentCredential())
        elif kind == "managed identity":
            chain.append(ManagedIdentityCredential())
        elif kind == "Azure CLI login":
            chain.append(AzureCliCredential())
    return ChainedTokenCredential(*chain)


def open_workspace(source: WorkspaceSource, endpoint: str | None = None) -> Any:
    """An ``azure.quantum.Workspace`` (no network use for a connection string).

    ``endpoint`` replaces the data-plane URL (a private endpoint, or the offline fake of
    :mod:`qslm_azure.testing`); it goes through the SDK's own ``_quantum_endpoint`` parameter,
    the one ``Workspace.from_connection_string`` uses.
    """
    from azure.core.credentials import AzureKeyCredential

    if source.connection_string is not None:
        if endpoint is None:
            workspace = _Workspace.from_connection_string(source.connection_string)
        else:
            key = re.search(r"(?i)ApiKey=([^;\s]+)", source.connection_string)
            workspace = _Workspace(
                subscription_id=source.subscription_id,
                resource_group=source.resource_group,
                name=source.workspace,
                location=source.location,
                credential=AzureKeyCredential(key.group(1)) if key else None,
                _from_connection_string=True,
                _quantum_endpoint=endpoint,
            )
    else:
        extra = {"_quantum_endpoint": endpoint} if endpoint else {}
        workspace = _Workspace(
            subscription_id=source.subscription_id,
            resource_group=source.resource_group,
            name=source.workspace,
            location=source.location,
            credential=_non_interactive_credential(source.credential_kinds),
            **extra,
        )
    workspace.append_user_agent("qslm")
    return workspace


def _make_workspace_class() -> type:
    no_sdk_telemetry()
    from azure.quantum import Workspace

    class QslmWorkspace(Workspace):
        """The SDK's Workspace, its HTTP pipeline making a single attempt per request: the
        pipeline would otherwise retry 429/5xx up to 10 times with waits of up to 120 s before
        we see anything; qslm's own retries (qslm_azure.jobs) are capped, honour Retry-After
        and stop at the solver's deadline."""

        def _create_client(self) -> Any:
            client = super()._create_client()
            policy = getattr(getattr(client, "_config", None), "retry_policy", None)
            if policy is not None and hasattr(policy, "total_retries"):
                policy.total_retries = 0
            return client

    return QslmWorkspace


class _LazyWorkspace:
    """Defers importing azure.quantum until a workspace is opened."""

    _cls: type | None = None

    def __getattr__(self, name: str) -> Any:
        if _LazyWorkspace._cls is None:
            _LazyWorkspace._cls = _make_workspace_class()
        return getattr(_LazyWorkspace._cls, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _LazyWorkspace._cls is None:
            _LazyWorkspace._cls = _make_workspace_class()
        return _LazyWorkspace._cls(*args, **kwargs)


_Workspace = _LazyWorkspace()
