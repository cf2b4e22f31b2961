"""``dwave.qpu``: a D-Wave quantum annealer through minor embedding.

The steps, each before the next spends anything: credentials are checked offline; the solver's
working graph is fetched (with retries); :func:`~qslm_dwave.embedding.estimate` refuses a
problem that cannot fit; an embedding is searched for (timed) and handed to dwave-system's
``FixedEmbeddingComposite``, which sets the chains and unembeds the answer. The result reports
the chain-break fraction, the physical qubits used, the embedding time and the QPU access time.

Tests replace :meth:`QpuSolver._make_sampler` with ``dwave.system.testing.MockDWaveSampler``;
everything after it is the same code that runs against a QPU.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from qslm.api import (
    Capabilities,
    ConfigError,
    Deadline,
    Qubo,
    QuboSolver,
    SolveResult,
    effective_time_limit,
)
from qslm_dwave import __version__
from qslm_dwave.credentials import describe_credentials, require_credentials
from qslm_dwave.embedding import (
    Method,
    find_embedding,
    physical_qubit_note,
    refuse_if_impossible,
    target_of,
)
from qslm_dwave.remote import Remote, RemoteOptions, build_sampler, client_config, close_sampler
from qslm_dwave.samplers import time_limit_field
from qslm_dwave.samplesets import SEED_LIMIT, choose_seed, library, sample_matrix

if TYPE_CHECKING:
    import dimod

ChainBreakMethod = Literal["majority_vote", "minimize_energy", "weighted_random", "discard"]
_US = 1e-6  # QPU timings come in microseconds


class QpuSolver(QuboSolver):
    """``dwave.qpu``: DWaveSampler behind a fixed embedding found for each problem."""

    class Options(RemoteOptions):
        num_reads: int = Field(
            default=100, ge=1, le=10_000, description="Anneal-readout cycles, one sample each."
        )
        annealing_time: float | None = Field(
            default=None,
            gt=0,
            description="Microseconds per anneal; default: the solver's (20 us on current "
            "systems); checked against its annealing_time_range.",
        )
        chain_strength: float | None = Field(
            default=None,
            gt=0,
            description="Coupling that holds a chain's qubits together (Ising units); "
            "default: uniform torque compensation.",
        )
        chain_strength_prefactor: float = Field(
            default=1.414,
            gt=0,
            description="Prefactor of uniform torque compensation (when chain_strength is "
            "not set); 0.5 to 2 is the usual range.",
        )
        chain_break_method: ChainBreakMethod = Field(
            default="majority_vote",
            description="How a broken chain becomes one value: majority vote, the lower "
            "energy, a weighted coin, or drop the sample.",
        )
        topology: Literal["pegasus", "zephyr", "chimera"] | None = Field(
            default=None,
            description="Pick the largest solver of this topology (instead of naming one).",
        )
        embedding: Method = Field(
            default="auto",
            description="Embedding search: minorminer's heuristic, busclique's clique "
            "embedding, or auto (clique first for dense problems).",
        )
        embedding_timeout: float = Field(
            default=30.0, gt=0, description="Seconds the embedding search may take."
        )
        seed: int | None = Field(
            default=None,
            ge=0,
            lt=SEED_LIMIT,
            description="Seed of the embedding search (the QPU takes none); default: the "
            "pipeline's seed, else a fresh one (recorded).",
        )
        time_limit: float | None = time_limit_field()

        @model_validator(mode="after")
        def _one_selector(self) -> QpuSolver.Options:
            if self.solver is not None and self.topology is not None:
                raise ValueError("give solver (a name) or topology, not both")
            return self

    capabilities: ClassVar[Capabilities] = Capabilities(remote=True, needs_credentials=True)
    name: ClassVar[str] = "dwave.qpu"
    version: ClassVar[str] = __version__

    def plan(self) -> list[str]:
        o = self.options
        if o.solver is not None:
            lines = [
                f"target: the QPU solver {o.solver!r} (its working graph is read from "
                "Leap at solve time)"
            ]
        else:
            lines = physical_qubit_note(o.topology)
        anneal = f"{o.annealing_time:g} us" if o.annealing_time else "the solver's default"
        chain = (
            f"{o.chain_strength:g}"
            if o.chain_strength is not None
            else f"uniform torque compensation x {o.chain_strength_prefactor:g}"
        )
        lines += [
            "each problem is checked against the real working graph and embedded before any "
            "QPU time is used; one that cannot fit is refused",
            f"{o.num_reads} reads, annealing time {anneal}, chain strength {chain}, "
            f"embedding {o.embedding} (up to {o.embedding_timeout:g} s)",
            describe_credentials(o.profile),
        ]
        return lines

    def _make_sampler(self, config: dict[str, Any]) -> dimod.Sampler:
        """The structured QPU sampler (the seam tests replace with a MockDWaveSampler)."""
        from dwave.system import DWaveSampler

        return DWaveSampler(**config)

    def _client_config(self, remote: Remote) -> dict[str, Any]:
        o = self.options
        extra: dict[str, Any] = {}
        if o.topology is not None:
            extra["solver"] = {"topology__type": o.topology}
        return client_config(o, remote.wait_limit(), **extra)

    def solve(
        self, qubo: Qubo, *, seed: int | None = None, time_limit: float | None = None
    ) -> SolveResult:
        self.check_problem(qubo)
        started = time.perf_counter()
        o = self.options
        deadline = Deadline(effective_time_limit(o.time_limit, time_limit), started)
        seed = choose_seed(o.seed, seed)
        credentials = require_credentials(self.display_name, o.profile)
        if qubo.num_variables == 0:
            return self.result(qubo, np.zeros((1, 0)), started=started, seed=seed)
        remote = Remote(self.display_name, o, deadline)
        sampler = remote.call(
            "connect to the QPU solver",
            lambda: build_sampler(self._make_sampler, self._client_config(remote)),
        )
        try:
            return self._solve_on(sampler, qubo, remote, seed, started, credentials.where)
        finally:
            close_sampler(sampler)

    def _solve_on(
        self, sampler: Any, qubo: Qubo, remote: Remote, seed: int, started: float, credentials: str
    ) -> SolveResult:
        from dwave.embedding.chain_strength import uniform_torque_compensation
        from dwave.system import FixedEmbeddingComposite

        o = self.options
        target = target_of(sampler)
        estimate = refuse_if_impossible(self.display_name, qubo, target)
        params = self._sample_parameters(sampler)
        timeout = min(o.embedding_timeout, max(remote.deadline.remaining(), 0.0))
        embedding = find_embedding(
            qubo, target, method=o.embedding, timeout=timeout, seed=seed, solver=self.display_name
        )
        bqm = qubo.to_bqm()
        chain_strength = o.chain_strength
        if chain_strength is None:
            chain_strength = float(
                uniform_torque_compensation(
                    bqm, embedding.chains, prefactor=o.chain_strength_prefactor
                )
            )
        composite = FixedEmbeddingComposite(sampler, embedding=embedding.chains)
        chain_break = _chain_break_method(o.chain_break_method, bqm, embedding.chains)

        def sample() -> dimod.SampleSet:
            sampleset = composite.sample(
                bqm,
                chain_strength=chain_strength,
                chain_break_method=chain_break,
                chain_break_fraction=True,
                **params,
            )
            sampleset.resolve()
            return sampleset

        sampleset = remote.call(f"sample on {target.name}", sample)
        timing = dict(sampleset.info.get("timing", {}))
        breaks = np.asarray(sampleset.record.chain_break_fraction, dtype=float)
        counts = np.asarray(sampleset.record.num_occurrences, dtype=float)
        reads = int(counts.sum())
        info = {
            "qpu": target.name,
            "topology": f"{target.topology} {'x'.join(map(str, target.shape))}".strip(),
            "working_qubits": target.qubits,
            "num_reads": reads,
            "chain_strength": chain_strength,
            "chain_break_method": o.chain_break_method,
            "chain_break_fraction": float(breaks @ counts / reads) if reads else None,
            "broken_reads": float(counts[breaks > 0].sum() / reads) if reads else None,
            "embedding": embedding.as_info(),
            "problem": estimate.as_info(),
            "problem_id": sampleset.info.get("problem_id"),
            "retries": remote.retries,
            "retried_faults": remote.faults,
            "credentials": credentials,
            "library": library("dwave-system", "dwave-cloud-client", "minorminer"),
        }
        timings = {"embedding_s": embedding.seconds}
        for key, name in (
            ("qpu_access_time", "qpu_access_s"),
            ("qpu_programming_time", "qpu_programming_s"),
            ("qpu_sampling_time", "qpu_sampling_s"),
        ):
            if key in timing:
                timings[name] = float(timing[key]) * _US
        samples = (
            sample_matrix(sampleset, qubo) if len(sampleset) else np.zeros((0, qubo.num_variables))
        )
        return self.result(qubo, samples, started=started, seed=seed, info=info, timings=timings)

    def _sample_parameters(self, sampler: Any) -> dict[str, Any]:
        """Reads, annealing time and label, checked against the solver's ranges."""
        o = self.options
        props = getattr(sampler, "properties", {}) or {}
        accepted = getattr(sampler, "parameters", {}) or {}
        params: dict[str, Any] = {"num_reads": o.num_reads}
        low, high = props.get("num_reads_range", (1, 10_000))
        if not low <= o.num_reads <= high:
            raise ConfigError(
                f"{self.display_name}: num_reads: the solver accepts {low} to "
                f"{high}, got {o.num_reads}"
            )
        if o.annealing_time is not None:
            low, high = props.get("annealing_time_range", (0.0, float("inf")))
            if "annealing_time" not in accepted or not low <= o.annealing_time <= high:
                raise ConfigError(
                    f"{self.display_name}: annealing_time: the solver accepts "
                    f"{low:g} to {high:g} us, got {o.annealing_time:g}"
                )
            params["annealing_time"] = o.annealing_time
        if "label" in accepted:
            params["label"] = o.label
        return params


def _chain_break_method(name: str, bqm: Any, chains: dict[Any, Any]) -> Any:
    from dwave.embedding import chain_breaks

    if name == "minimize_energy":
        return chain_breaks.MinimizeEnergy(bqm, chains)
    return getattr(chain_breaks, name)
