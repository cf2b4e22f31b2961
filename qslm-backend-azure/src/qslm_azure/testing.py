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

import json
import re
import secrets
import threading
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

from qslm_azure.fake_http import ACCOUNT, handler_for, now

# Solver options for tests against the fake: quick polls and retries, a short angle tuning.
FAST_OPTIONS = {
    "poll_interval": 0.02,
    "poll_max_interval": 0.1,
    "retry_backoff": 0.01,
    "retry_max_backoff": 0.05,
    "maxiter": 40,
}


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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self))
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
            "creationTime": now(),
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
        job.setdefault("beginExecutionTime", now())
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
        job.update(status="Succeeded", endExecutionTime=now())

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
