"""D-Wave credentials: only from the environment or dwave's own configuration files.

qslm never takes a token in its options and never copies one into results, manifests, logs or
messages: it checks that dwave's configuration holds one (reading files and the environment,
no network) and names where it was found; the cloud client reads the token again itself.
:func:`redact` and :func:`redact_sdk_logs` scrub any token that the SDK itself puts in an
exception text or a debug log record.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from qslm.api import ConfigError
from qslm.secrets import Redactor
from qslm_dwave.errors import MissingCredentials

TOKEN_ENV = "DWAVE_API_TOKEN"

HOW_TO_PROVIDE = (
    "set the environment variable DWAVE_API_TOKEN to your Leap API token, or store it in a "
    "dwave.conf file with `dwave config create` (`dwave auth login` then "
    "`dwave config create --auto-token` fetches it from Leap); DWAVE_CONFIG_FILE and "
    "DWAVE_PROFILE choose the file and profile"
)

# Tokens seen in this process (from the environment or a config file), scrubbed from any text.
# dwave-cloud-client's token shapes ("ABC-" + 40 hex digits), and "token = ..." in a file.
_TOKEN_PATTERNS = (
    re.compile(r"\b[0-9A-Za-z]{2,4}-[0-9A-Fa-f]{32,}\b"),
    re.compile(r"(?i)(token['\"]?\s*[=:]\s*['\"]?)[^\s'\",}]+"),
)


@dataclass(frozen=True)
class CredentialSource:
    """Where the token comes from, in words (never the token)."""

    where: str


_redactor = Redactor((TOKEN_ENV,), _TOKEN_PATTERNS)
_remember = _redactor.remember


def redact(text: str) -> str:
    """``text`` with every known token, and anything shaped like one, replaced by ``***``."""
    return _redactor.redact(text)


def find_credentials(profile: str | None = None) -> CredentialSource | None:
    """Where dwave's configuration finds an API token, or None; reads only the environment
    and local files (``dwave.cloud.config.load_config``), never the network."""
    from dwave.cloud.config import get_configfile_paths, load_config

    redact_sdk_logs()
    try:
        config = load_config(profile=profile)
    except Exception as exc:  # unreadable or malformed file, unknown profile
        raise ConfigError(
            f"D-Wave configuration could not be read: {type(exc).__name__}: {redact(str(exc))}"
        ) from None
    token = config.get("token")
    if not token:
        return None
    _remember(token)
    if os.environ.get(TOKEN_ENV):
        return CredentialSource(f"the environment variable {TOKEN_ENV}")
    files = _config_files(get_configfile_paths)
    chosen = config.get("profile") or profile or os.environ.get("DWAVE_PROFILE")
    where = "the dwave config file " + (", ".join(files) if files else "(auto-detected)")
    return CredentialSource(where + (f", profile {chosen!r}" if chosen else ""))


def _config_files(get_configfile_paths) -> list[str]:
    explicit = os.environ.get("DWAVE_CONFIG_FILE")
    if explicit:
        return [explicit]
    try:
        return list(get_configfile_paths())
    except Exception:  # only for the message; the token was found anyway
        return []


def require_credentials(solver: str, profile: str | None = None) -> CredentialSource:
    """The token's source, or :class:`MissingCredentials` at once (before any network use)."""
    source = find_credentials(profile)
    if source is None:
        from dwave.cloud.config import get_configfile_paths

        looked = _config_files(get_configfile_paths)
        if looked:
            files = ", ".join(looked)
        else:
            searched = _config_files(lambda: get_configfile_paths(only_existing=False))
            files = "none of " + ", ".join(searched) + " exists"
        where = f", profile {profile!r}" if profile else ""
        raise MissingCredentials(
            f"{solver}: no D-Wave API token found: looked in the environment variable "
            f"{TOKEN_ENV} and in dwave's config files ({files}{where}); {HOW_TO_PROVIDE}. "
            "Nothing was sent to D-Wave."
        )
    return source


def describe_credentials(profile: str | None = None) -> str:
    """One line for ``qslm validate``: where the token is, or what happens without one."""
    try:
        source = find_credentials(profile)
    except ConfigError as exc:
        return f"credentials: {exc}"
    if source is None:
        return (
            "credentials: none found, so this solver fails at once (a fallback solver, if "
            "any, runs instead); set DWAVE_API_TOKEN or run `dwave config create`"
        )
    return f"credentials: API token from {source.where}"


def redact_sdk_logs() -> None:
    """Scrub tokens from every log record of the Ocean SDK (loggers ``dwave.*``) and of this
    package: dwave-cloud-client logs its whole configuration, token included, at DEBUG level.
    Idempotent."""
    _redactor.scrub_logs("dwave", "qslm_dwave")
