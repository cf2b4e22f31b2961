"""qslm.secrets: tokens never reach messages or log output."""

from __future__ import annotations

import io
import logging
import re

from qslm.secrets import Redactor


def test_redacts_environment_remembered_and_pattern_secrets(monkeypatch):
    monkeypatch.setenv("QSLM_TEST_TOKEN", "env-secret-value")
    r = Redactor(
        ["QSLM_TEST_TOKEN"], [re.compile(r"(token=)\S+"), re.compile(r"\bAB-[0-9a-f]{8}\b")]
    )
    r.remember("remembered-1")
    r.remember("abc")  # too short to redact safely
    text = "env-secret-value remembered-1 token=xyz AB-0123abcd abc"
    assert r.redact(text) == "*** *** token=*** *** abc"


def test_scrub_logs_hides_secrets_from_any_handler():
    r = Redactor()
    r.remember("hunter2-token")
    r.scrub_logs("qslm_test_sdk")
    r.scrub_logs("qslm_test_sdk")  # idempotent
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    for name in ("qslm_test_sdk.client", "qslm_test_other"):
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        try:
            log.debug("config: %s", {"token": "hunter2-token"})
        finally:
            log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert "hunter2-token" not in lines[0] and "***" in lines[0]
    assert "hunter2-token" in lines[1]  # other loggers are left alone
