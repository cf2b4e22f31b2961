"""A fake Azure Quantum service on 127.0.0.1, for offline tests of the Azure solvers (and of
anything else that uses the azure-quantum client).

It speaks the REST API the real client uses: the workspace's ``providerStatus``,
``storage/sasUri``, and ``jobs/{id}`` (PUT to create, GET to poll, POST ``:cancel``), plus
blob upload and ranged download on SAS URLs that point back at itself (path-style, like the
Azurite emulator). Jobs are simulated with Qiskit (exact statevector) from the submitted
IonQ JSON, OpenQASM 2 or Quil, and answered in each provider's result format.

It can be told to misbehave: :meth:`FakeAzureQuantum.inject` queues faults for the next job
requests (``"throttle"``: 429 with Retry-After, ``"unavailable"``: 503, ``"reset"``: the
connection reset without an answer, ``"bad_request"``: 400); ``fail_jobs`` makes jobs end
Failed; ``slow`` keeps them Executing until cancelled; ``queue_polls`` keeps them Waiting for
that many polls.

Use::

    with FakeAzureQuantum() as fake:
        os.environ["AZURE_QUANTUM_CONNECTION_STRING"] = fake.connection_string
        solver = IonQSolver(IonQSolver.Options(endpoint=fake.url, **FAST_OPTIONS))
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

ACCOUNT = "devstoreaccount1"
# Solver options for tests against the fake: quick polls and retries, a short angle tuning.
FAST_OPTIONS = {
    "poll_interval": 0.02,
    "poll_max_interval": 0.1,
    "retry_backoff": 0.01,
    "retry_max_backoff": 0.05,
    "maxiter": 40,
}
TARGETS = {
    "ionq": ["ionq.simulator", "ionq.qpu.aria-1", "ionq.qpu.forte-1"],
    "quantinuum": ["quantinuum.sim.h2-1sc", "quantinuum.sim.h2-1e", "quantinuum.qpu.h2-1"],
    "rigetti": ["rigetti.sim.qvm", "rigetti.qpu.cepheus-1-108q"],
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeAzureQuantum:
    """The fake service; a context manager that starts and stops its server thread."""

    subscription_id = "00000000-1111-2222-3333-444444444444"
    resource_group = "qslm-rg"
    workspace = "qslm-ws"
    location = "westus"

    def __init__(self, *, seed: int = 1234) -> None:
        self.api_key = "fake-" + secrets.token_hex(16)
        self.seed = seed
        self.blobs: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, float]] = []
        self.cancelled: list[str] = []
        self.fail_jobs = False
        self.slow = False
        self.queue_polls = 1
        self.unavailable_targets: set[str] = set()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- control ----------------------------------------------------------------------------

    def inject(
        self, kind: str, times: int = 1, retry_after: float = 0.0, method: str | None = None
    ) -> None:
        """Queue ``times`` faults of ``kind`` for the next requests to the jobs API (of that
        HTTP ``method`` only, if given): "throttle" (429 with Retry-After), "unavailable"
        (503), "reset" (the connection reset without an answer) or "bad_request" (400, a
        permanent refusal)."""
        if kind not in ("throttle", "unavailable", "reset", "bad_request"):
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self.faults += [(kind, retry_after, method)] * times

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def connection_string(self) -> str:
        """A connection string in the portal's format (its endpoint is Azure's, as the SDK's
        parser requires; pass :attr:`url` as the solver's ``endpoint``)."""
        return (
            f"SubscriptionId={self.subscription_id};ResourceGroupName={self.resource_group};"
            f"WorkspaceName={self.workspace};ApiKey={self.api_key};"
            f"QuantumEndpoint=https://{self.location}.quantum.azure.com/;"
        )

    def start(self) -> FakeAzureQuantum:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAzureQuantum:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- the service ------------------------------------------------------------------------

    def _sas(self, container: str, blob: str | None = None) -> str:
        path = f"{self.url}{ACCOUNT}/{container}" + (f"/{blob}" if blob else "")
        return f"{path}?sv=2023-11-03&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=rwl&sig=fakesig"

    def _create_job(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        container = unquote(urlparse(body["containerUri"]).path.strip("/").split("/")[-1])
        job = {
            **body,
            "id": job_id,
            "itemType": "Job",
            "status": "Waiting",
            "creationTime": _now(),
            "outputDataUri": self._sas(container, "rawOutputData"),
        }
        self.jobs[job_id] = job
        self.polls[job_id] = 0
        return job

    def _advance(self, job: dict[str, Any]) -> None:
        """Move a job along on each poll: Waiting (``queue_polls`` polls), Executing, done."""
        if job["status"] in ("Succeeded", "Failed", "Cancelled"):
            return
        self.polls[job["id"]] += 1
        polls = self.polls[job["id"]]
        if polls <= self.queue_polls:
            job["status"] = "Waiting"
            return
        job["status"] = "Executing"
        job.setdefault("beginExecutionTime", _now())
        if self.slow:
            return
        if self.fail_jobs:
            job.update(
                status="Failed",
                errorData={"code": "ExecutionFailed", "message": "the QPU reported a fault"},
            )
            return
        try:
            output = self._simulate(job)
        except Exception as exc:  # a circuit the fake cannot read fails like the service's
            job.update(
                status="Failed",
                errorData={"code": "InvalidInputData", "message": f"{type(exc).__name__}: {exc}"},
            )
            return
        container = urlparse(job["outputDataUri"]).path.strip("/").split("/")[1]
        self.blobs[(container, "rawOutputData")] = (json.dumps(output).encode(), "application/json")
        job.update(status="Succeeded", endExecutionTime=_now())

    def _simulate(self, job: dict[str, Any]) -> Any:
        parts = urlparse(job["inputDataUri"]).path.strip("/").split("/")
        data, _ = self.blobs[(parts[1], "/".join(parts[2:]))]
        shots = int((job.get("inputParams") or {}).get("shots") or 500)
        fmt = job["inputDataFormat"]
        if fmt == "ionq.circuit.v1":
            return {"histogram": _ionq_histogram(json.loads(data))}
        if fmt == "honeywell.openqasm.v1":
            from qiskit import qasm2

            # qelib1.inc as Quantinuum reads it, rzz and the other Qiskit-era gates included
            circuit = qasm2.loads(
                data.decode(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS
            )
            bits = _sample(circuit, shots, self.seed)
            return {circuit.cregs[0].name: bits}
        if fmt == "rigetti.quil.v1":
            circuit = _from_quil(data.decode())
            bits = _sample(circuit, shots, self.seed)
            return {"ro": [[int(b) for b in reversed(s)] for s in bits]}
        raise ValueError(f"input format {fmt!r} is not simulated by the fake")


def _ionq_histogram(program: dict[str, Any]) -> dict[str, float]:
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    qc = QuantumCircuit(int(program["qubits"]))
    simple = {"h", "x", "y", "z", "s", "t"}
    for gate in program["circuit"]:
        name, targets = gate["gate"], gate.get("targets", [gate.get("target")])
        controls = gate.get("controls", [])
        angle = gate.get("rotation")
        if controls:
            if name == "x":
                qc.mcx(controls, targets[0])
            elif name == "z":
                qc.cz(controls[0], targets[0])
            else:
                raise ValueError(f"controlled gate {name!r} is not simulated by the fake")
        elif name in simple:
            getattr(qc, name)(targets[0])
        elif name in ("si", "ti"):
            getattr(qc, name[0] + "dg")(targets[0])
        elif name in ("rx", "ry", "rz"):
            getattr(qc, name)(float(angle), targets[0])
        elif name in ("xx", "yy", "zz"):
            getattr(qc, "r" + name)(float(angle), targets[0], targets[1])
        else:
            raise ValueError(f"gate {name!r} is not simulated by the fake")
    probs = Statevector(qc).probabilities()
    return {str(i): float(p) for i, p in enumerate(probs) if p > 1e-12}


def _from_quil(text: str) -> Any:
    from qiskit import QuantumCircuit

    ops = []
    width = 0
    bits = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"DECLARE ro BIT\[(\d+)\]", line):
            bits = int(m.group(1))
        elif m := re.fullmatch(r"(RX|RZ)\(([^)]+)\) (\d+)", line):
            ops.append((m.group(1).lower(), float(m.group(2)), int(m.group(3))))
            width = max(width, int(m.group(3)) + 1)
        elif m := re.fullmatch(r"CZ (\d+) (\d+)", line):
            ops.append(("cz", int(m.group(1)), int(m.group(2))))
            width = max(width, int(m.group(1)) + 1, int(m.group(2)) + 1)
        elif m := re.fullmatch(r"MEASURE (\d+) ro\[(\d+)\]", line):
            ops.append(("measure", int(m.group(1)), int(m.group(2))))
            width = max(width, int(m.group(1)) + 1)
        else:
            raise ValueError(f"Quil line not simulated by the fake: {line!r}")
    qc = QuantumCircuit(width, bits)
    for op in ops:
        if op[0] in ("rx", "rz"):
            getattr(qc, op[0])(op[1], op[2])
        else:
            getattr(qc, op[0])(op[1], op[2])
    return qc


def _sample(circuit: Any, shots: int, seed: int) -> list[str]:
    """One bitstring per shot (Qiskit's order) from the exact statevector sampler."""
    from qiskit.primitives import StatevectorSampler

    result = StatevectorSampler(seed=seed).run([circuit], shots=shots).result()[0]
    register = next(iter(result.data.values()))
    return register.get_bitstrings()


def _handler(fake: FakeAzureQuantum) -> type[BaseHTTPRequestHandler]:
    ws_path = re.compile(
        r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Quantum/workspaces/[^/]+/(.+)$"
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            raw = (
                b""
                if body is None
                else (body if isinstance(body, bytes) else json.dumps(body).encode())
            )
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
            url = urlparse(self.path)
            fake.requests.append((self.command, url.path))
            if url.path.startswith(f"/{ACCOUNT}/"):
                return self._blob(url)
            match = ws_path.match(url.path)
            if not match:
                return self._send(404, {"error": {"code": "NotFound", "message": url.path}})
            if self.headers.get("x-ms-quantum-api-key") != fake.api_key:
                return self._send(401, {"error": {"code": "Unauthorized", "message": "bad key"}})
            rest = match.group(1)
            if rest.startswith("jobs/") and self._fault():
                return
            with fake.lock:
                self._quantum(rest)

        def _fault(self) -> bool:
            with fake.lock:
                due = [i for i, f in enumerate(fake.faults) if f[2] in (None, self.command)]
                if not due:
                    return False
                kind, after, _ = fake.faults.pop(due[0])
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
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
            return True

        def _quantum(self, rest: str) -> None:
            if rest == "providerStatus" and self.command == "GET":
                value = [
                    {
                        "id": provider,
                        "currentAvailability": "Available",
                        "targets": [
                            {
                                "id": t,
                                "currentAvailability": "Unavailable"
                                if t in fake.unavailable_targets
                                else "Available",
                                "averageQueueTime": 3 if ".qpu." in t else 0,
                                "statusPage": None,
                            }
                            for t in targets
                        ],
                    }
                    for provider, targets in TARGETS.items()
                ]
                return self._send(200, {"value": value, "nextLink": None})
            if rest == "storage/sasUri" and self.command == "POST":
                body = json.loads(self._body() or b"{}")
                return self._send(
                    200, {"sasUri": fake._sas(body["containerName"], body.get("blobName"))}
                )
            if m := re.fullmatch(r"jobs/([^/:]+):cancel", rest):
                self._body()
                job = fake.jobs.get(m.group(1))
                if job is None:
                    return self._send(404, {"error": {"code": "NotFound", "message": "no job"}})
                fake.cancelled.append(job["id"])
                if job["status"] not in ("Succeeded", "Failed"):
                    job.update(status="Cancelled", cancellationTime=_now())
                return self._send(204)
            if m := re.fullmatch(r"jobs/([^/:]+)", rest):
                job_id = m.group(1)
                if self.command == "PUT":
                    body = json.loads(self._body())
                    return self._send(200, fake._create_job(job_id, body))
                if self.command == "GET":
                    job = fake.jobs.get(job_id)
                    if job is None:
                        return self._send(404, {"error": {"code": "NotFound", "message": "no job"}})
                    fake._advance(job)
                    return self._send(200, job)
            return self._send(404, {"error": {"code": "NotFound", "message": rest}})

        def _blob(self, url: Any) -> None:
            parts = url.path.strip("/").split("/", 2)
            query = parse_qs(url.query)
            if "sig" not in query:
                return self._send(403, {"error": "AuthenticationFailed"})
            headers = {
                "ETag": '"0x8DB0000000000"',
                "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                "x-ms-version": "2023-11-03",
            }
            if len(parts) == 2 and self.command == "PUT":  # create container
                self._body()
                return self._send(201, None, headers)
            if len(parts) != 3:
                return self._send(400, {"error": "bad blob path"})
            key = (unquote(parts[1]), unquote(parts[2]))
            if self.command == "PUT":
                data = self._body()
                with fake.lock:
                    fake.blobs[key] = (data, self.headers.get("x-ms-blob-content-type") or "")
                return self._send(201, None, {**headers, "x-ms-request-server-encrypted": "true"})
            with fake.lock:
                found = fake.blobs.get(key)
            if found is None:
                return self._send(404, None, {"x-ms-error-code": "BlobNotFound"})
            data, content_type = found
            headers.update(
                {
                    "x-ms-blob-type": "BlockBlob",
                    "Content-Type": content_type or "application/octet-stream",
                    "Accept-Ranges": "bytes",
                }
            )
            wanted = self.headers.get("x-ms-range") or self.headers.get("Range")
            if wanted and self.command == "GET":
                start, _, end = wanted.split("=", 1)[1].partition("-")
                lo, hi = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
                chunk = data[lo : hi + 1]
                headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
                return self._send(206, chunk, headers)
            if self.command == "HEAD":
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return None
            return self._send(200, data, headers)

        def do_GET(self) -> None:
            self._route()

        do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

    return Handler
