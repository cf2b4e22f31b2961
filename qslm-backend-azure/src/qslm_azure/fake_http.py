"""The HTTP side of :class:`~qslm_azure.testing.FakeAzureQuantum`: one request handler whose
methods are the service's endpoints (workspace REST API, SAS blob storage), and the fault
injection the tests ask for."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
import struct
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import ParseResult, parse_qs, unquote, urlparse

if TYPE_CHECKING:
    from qslm_azure.testing import FakeAzureQuantum

ACCOUNT = "devstoreaccount1"
TARGETS = {
    "ionq": ["ionq.simulator", "ionq.qpu.aria-1", "ionq.qpu.forte-1"],
    "quantinuum": ["quantinuum.sim.h2-1sc", "quantinuum.sim.h2-1e", "quantinuum.qpu.h2-1"],
    "rigetti": ["rigetti.sim.qvm", "rigetti.qpu.cepheus-1-108q"],
}
_WORKSPACE_PATH = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Quantum/workspaces/[^/]+/(.+)$"
)
_BLOB_HEADERS = {
    "ETag": '"0x8DB0000000000"',
    "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
    "x-ms-version": "2023-11-03",
}


def now() -> str:
    """The service's timestamp format (UTC, milliseconds, ``Z``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _not_found(message: str) -> dict[str, Any]:
    return {"error": {"code": "NotFound", "message": message}}


def handler_for(fake: FakeAzureQuantum) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to ``fake`` (http.server makes one instance per request)."""
    return type("Handler", (FakeHandler,), {"fake": fake})


class FakeHandler(BaseHTTPRequestHandler):
    """Routes each request to the method of its endpoint."""

    protocol_version = "HTTP/1.1"
    fake: FakeAzureQuantum

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._route()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

    # --- plumbing ---------------------------------------------------------------------------

    def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body)
        raw = raw.encode() if isinstance(raw, str) else raw
        self.send_response(code)
        self.send_header("x-ms-request-id", secrets.token_hex(8))
        if body is not None and not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self) -> None:
        fake = self.fake
        url = urlparse(self.path)
        fake.requests.append((self.command, url.path))
        if url.path.startswith(f"/{ACCOUNT}/"):
            return self._blob(url)
        match = _WORKSPACE_PATH.match(url.path)
        if not match:
            return self._send(404, _not_found(url.path))
        if self.headers.get("x-ms-quantum-api-key") != fake.api_key:
            return self._send(401, {"error": {"code": "Unauthorized", "message": "bad key"}})
        rest = match.group(1)
        if rest.startswith("jobs/") and self._fault():
            return None
        with fake.lock:
            return self._workspace(rest)

    def _fault(self) -> bool:
        """Answer with the next queued fault for this method, if any."""
        with self.fake.lock:
            faults = self.fake.faults
            due = [i for i, f in enumerate(faults) if f[2] in (None, self.command)]
            if not due:
                return False
            kind, after, _ = faults.pop(due[0])
        self._body()
        if kind == "throttle":
            self._send(
                429,
                {"error": {"code": "TooManyRequests", "message": "throttled"}},
                {"Retry-After": f"{after:g}"},
            )
        elif kind == "unavailable":
            self._send(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}})
        elif kind == "bad_request":
            self._send(400, {"error": {"code": "InvalidRequest", "message": "refused"}})
        else:
            # An abortive close: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        return True

    # --- the workspace API ------------------------------------------------------------------

    def _workspace(self, rest: str) -> None:
        if rest == "providerStatus" and self.command == "GET":
            return self._provider_status()
        if rest == "storage/sasUri" and self.command == "POST":
            return self._sas_uri()
        if m := re.fullmatch(r"jobs/([^/:]+):cancel", rest):
            return self._cancel_job(m.group(1))
        if m := re.fullmatch(r"jobs/([^/:]+)", rest):
            if self.command == "PUT":
                return self._create_job(m.group(1))
            if self.command == "GET":
                return self._get_job(m.group(1))
        return self._send(404, _not_found(rest))

    def _provider_status(self) -> None:
        unavailable = self.fake.unavailable_targets
        value = [
            {
                "id": provider,
                "currentAvailability": "Available",
                "targets": [
                    {
                        "id": t,
                        "currentAvailability": "Unavailable" if t in unavailable else "Available",
                        "averageQueueTime": 3 if ".qpu." in t else 0,
                        "statusPage": None,
                    }
                    for t in targets
                ],
            }
            for provider, targets in TARGETS.items()
        ]
        self._send(200, {"value": value, "nextLink": None})

    def _sas_uri(self) -> None:
        body = json.loads(self._body() or b"{}")
        self._send(200, {"sasUri": self.fake._sas(body["containerName"], body.get("blobName"))})

    def _cancel_job(self, job_id: str) -> None:
        self._body()
        job = self.fake.jobs.get(job_id)
        if job is None:
            return self._send(404, _not_found("no job"))
        self.fake.cancelled.append(job["id"])
        if job["status"] not in ("Succeeded", "Failed"):
            job.update(status="Cancelled", cancellationTime=now())
        return self._send(204)

    def _create_job(self, job_id: str) -> None:
        body = json.loads(self._body())
        self._send(200, self.fake._create_job(job_id, body))

    def _get_job(self, job_id: str) -> None:
        job = self.fake.jobs.get(job_id)
        if job is None:
            return self._send(404, _not_found("no job"))
        self.fake._advance(job)
        return self._send(200, job)

    # --- blob storage (path-style SAS URLs, like Azurite) -----------------------------------

    def _blob(self, url: ParseResult) -> None:
        parts = url.path.strip("/").split("/", 2)
        if "sig" not in parse_qs(url.query):
            return self._send(403, {"error": "AuthenticationFailed"})
        if len(parts) == 2 and self.command == "PUT":  # create container
            self._body()
            return self._send(201, None, _BLOB_HEADERS)
        if len(parts) != 3:
            return self._send(400, {"error": "bad blob path"})
        key = (unquote(parts[1]), unquote(parts[2]))
        if self.command == "PUT":
            return self._put_blob(key)
        return self._read_blob(key)

    def _put_blob(self, key: tuple[str, str]) -> None:
        data = self._body()
        with self.fake.lock:
            self.fake.blobs[key] = (data, self.headers.get("x-ms-blob-content-type") or "")
        self._send(201, None, {**_BLOB_HEADERS, "x-ms-request-server-encrypted": "true"})

    def _read_blob(self, key: tuple[str, str]) -> None:
        """GET (whole or ``Range``d) and HEAD of a stored blob."""
        with self.fake.lock:
            found = self.fake.blobs.get(key)
        if found is None:
            return self._send(404, None, {"x-ms-error-code": "BlobNotFound"})
        data, content_type = found
        headers = {
            **_BLOB_HEADERS,
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": content_type or "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        wanted = self.headers.get("x-ms-range") or self.headers.get("Range")
        if wanted and self.command == "GET":
            start, _, end = wanted.split("=", 1)[1].partition("-")
            lo, hi = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
            return self._send(206, data[lo : hi + 1], headers)
        if self.command == "HEAD":
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return None
        return self._send(200, data, headers)
