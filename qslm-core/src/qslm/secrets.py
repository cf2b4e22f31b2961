"""Keeping tokens out of messages and logs, for plugins that talk to remote services.

A :class:`Redactor` knows the secrets seen in this process (and the environment variables
that hold them) and replaces them, and anything shaped like one, with ``***``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

MASK = "***"


class Redactor:
    """Replaces known secrets, those in ``env_vars``, and ``patterns`` matches in text."""

    def __init__(self, env_vars: Iterable[str] = (), patterns: Iterable[re.Pattern] = ()):
        self.env_vars = tuple(env_vars)
        self.patterns = tuple(patterns)
        self._secrets: set[str] = set()
        self._scrubbed: set[str] = set()

    def remember(self, secret: str | None) -> None:
        """Redact ``secret`` from now on (values shorter than 4 characters are ignored)."""
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """``text`` with every secret, and every pattern's match, replaced by ``***``. A
        pattern with a group keeps the group (e.g. the ``token = `` before a value)."""
        for var in self.env_vars:
            self.remember(os.environ.get(var))
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in self.patterns:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
        return text

    def scrub_logs(self, *logger_prefixes: str) -> None:
        """Redact every log record of the loggers named ``prefix...`` as it is created,
        whatever handler later writes it. SDKs create loggers as their modules are imported,
        so a filter on each logger would miss later ones; the record factory is wrapped
        instead (records of other loggers pass untouched). Idempotent per prefix."""
        new = tuple(p for p in logger_prefixes if p not in self._scrubbed)
        if not new:
            return
        self._scrubbed.update(new)
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if record.name.startswith(new):
                self._scrub(record)
            return record

        logging.setLogRecordFactory(factory)

    def _scrub(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))


# userinfo (user:password@) of a URL, and query parameters whose names look like secrets
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+@)")
_URL_SECRET_QUERY = re.compile(
    r"(?P<key>[?&](?:token|access_token|api[_-]?key|key|secret|password|sig|signature)=)"
    r"[^&#\s]+",
    re.I,
)


def strip_credentials(text: str) -> str:
    """``text`` with the credentials of every URL in it removed: ``user:pass@`` becomes
    ``***@`` and secret-looking query values ``***`` (``https://***@host/?token=***``)."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _URL_SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
