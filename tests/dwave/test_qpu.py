"""dwave.qpu end to end on dwave-system's MockDWaveSampler: the same embedding, chain and
unembedding code as on a QPU, with the statistics a user reads; refusals before QPU time."""

from __future__ import annotations

import json
import time

import dimod
import dimod.testing
import numpy as np
import pytest

from qslm.errors import ConfigError
from qslm.qubo.model import Qubo
from qslm.qubo.solver import ProblemTooLarge
from qslm.testing import random_qubo
from qslm_dwave.errors import EmbeddingNotFound
from qslm_dwave.qpu import QpuSolver


def qpu(**options):
    return QpuSolver(QpuSolver.Options(**options))


def complete_qubo(n: int, seed: int = 0) -> Qubo:
    rng = np.random.default_rng(seed)
    return Qubo(rng.normal(size=n), np.triu(rng.normal(size=(n, n)) + 3.0, 1))


class CountingMock:
    """Wraps a mock QPU, counting sample calls (to prove a refusal spent no QPU time)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.calls = 0
        original = sampler.sample

        def sample(bqm, **kwargs):
            self.calls += 1
            return original(bqm, **kwargs)

        sampler.sample = sample


def test_a_sparse_problem_runs_end_to_end_and_reports_embedding_and_chains(
    fake_token, qpu_factory, mock_qpu
):
    configs = qpu_factory(mock_qpu("pegasus", [16]))
    q = random_qubo(40, density=0.2, seed=2, sense="max", labels=[f"r{i}" for i in range(40)])
    result = qpu(num_reads=64).solve(q, seed=5)

    assert result.solver == "dwave.qpu" and result.status == "ok"
    assert np.allclose(result.energies, q.energies(result.samples))
    info = result.info
    emb = info["embedding"]
    assert emb["method"] == "minorminer"  # sparse: the heuristic first
    assert 40 <= emb["physical_qubits"] <= 5640 and emb["max_chain_length"] >= 1
    assert 0.0 <= info["chain_break_fraction"] <= 1.0
    assert info["chain_strength"] > 0  # uniform torque compensation
    assert info["qpu"] == "MockDWaveSampler" and info["topology"] == "pegasus 16"
    assert info["num_reads"] == 64 and info["problem"]["variables"] == 40
    assert result.timings["embedding_s"] > 0
    assert result.timings["qpu_access_s"] == pytest.approx(8550.28e-6)  # the mock's timing
    assert info["credentials"] == "the environment variable DWAVE_API_TOKEN"
    json.dumps(result.to_dict())
    # The sampler was asked for with bounded waits and without the token.
    assert configs[0]["polling_timeout"] <= 300 and "token" not in configs[0]


def test_dense_problems_get_a_clique_embedding(fake_token, qpu_factory, mock_qpu):
    qpu_factory(mock_qpu("pegasus", [6]))
    result = qpu(num_reads=20).solve(complete_qubo(30), seed=1)
    emb = result.info["embedding"]
    assert emb["method"] == "clique"
    assert emb["physical_qubits"] > 30 and emb["max_chain_length"] > 1


def test_zephyr_and_a_forced_method(fake_token, qpu_factory, mock_qpu):
    qpu_factory(mock_qpu("zephyr", [2, 4]))
    result = qpu(num_reads=10, embedding="clique").solve(random_qubo(12, density=0.2), seed=1)
    assert result.info["embedding"]["method"] == "clique"
    assert result.info["topology"] == "zephyr 2x4"


def test_the_qpu_path_passes_dimods_own_checks(fake_token, qpu_factory, mock_qpu, monkeypatch):
    """The composite, the structured child and the sample set meet dimod's API contracts,
    and our energies equal dimod's for the same samples."""
    import dwave.system

    seen = {}

    class Spy(dwave.system.FixedEmbeddingComposite):
        def sample(self, bqm, **kwargs):
            sampleset = super().sample(bqm, **kwargs)
            seen.update(composite=self, bqm=bqm, sampleset=sampleset)
            return sampleset

    monkeypatch.setattr(dwave.system, "FixedEmbeddingComposite", Spy)
    qpu_factory(mock_qpu("pegasus", [6]))
    q = random_qubo(20, density=0.3, seed=4, sense="max", offset=1.25)
    result = qpu(num_reads=30).solve(q, seed=2)

    composite, bqm, sampleset = seen["composite"], seen["bqm"], seen["sampleset"]
    dimod.testing.assert_sampler_api(composite)
    dimod.testing.assert_composite_api(composite)
    dimod.testing.assert_structured_api(composite.child)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    # The BQM is the minimisation form: a maximum of f is the minimum of the BQM, negated.
    assert result.best_energy == pytest.approx(-sampleset.first.energy)


def test_a_problem_larger_than_the_qpu_is_refused_before_any_qpu_time(
    fake_token, qpu_factory, mock_qpu
):
    mock = CountingMock(mock_qpu("pegasus", [6]))  # 680 qubits
    qpu_factory(mock.sampler)
    with pytest.raises(ProblemTooLarge, match="680 working qubits"):
        qpu().solve(random_qubo(700, density=0.001, seed=1))
    # A star: 670 variables fit the qubit count, but the hub's 669 interactions need a chain
    # of at least 52 qubits (15 couplers each), 721 physical qubits in all.
    star = Qubo.from_coo(670, np.zeros(670), [0] * 669, range(1, 670), np.ones(669))
    with pytest.raises(ProblemTooLarge, match="at least 721 physical qubits"):
        qpu().solve(star)
    assert mock.calls == 0


def test_a_complete_problem_beyond_the_largest_clique_is_refused_quickly(
    fake_token, qpu_factory, mock_qpu
):
    mock = CountingMock(mock_qpu("pegasus", [6]))  # complete graphs embed up to 60 variables
    qpu_factory(mock.sampler)
    started = time.perf_counter()
    with pytest.raises(EmbeddingNotFound, match="has 60 variables") as err:
        qpu(embedding_timeout=60).solve(complete_qubo(70))
    assert time.perf_counter() - started < 10  # no minorminer search to its timeout
    assert "70 variables" in str(err.value) and "dwave.hybrid" in str(err.value)
    assert mock.calls == 0


def test_annealing_time_outside_the_solvers_range_is_refused(fake_token, qpu_factory, mock_qpu):
    mock = CountingMock(mock_qpu())
    qpu_factory(mock.sampler)
    with pytest.raises(ConfigError, match=r"annealing_time: the solver accepts 0.5 to 2000 us"):
        qpu(annealing_time=5000.0).solve(random_qubo(6))
    assert mock.calls == 0
    result = qpu(annealing_time=50.0, num_reads=5).solve(random_qubo(6), seed=0)
    assert result.num_samples >= 1


def test_solver_selection(fake_token, qpu_factory, mock_qpu):
    configs = qpu_factory(lambda: mock_qpu())
    qpu(topology="zephyr").solve(random_qubo(4), seed=0)
    qpu(solver="Advantage_system4.1", region="eu-central-1").solve(random_qubo(4), seed=0)
    assert configs[0]["solver"] == {"topology__type": "zephyr"}
    assert configs[1]["solver"] == "Advantage_system4.1"
    assert configs[1]["region"] == "eu-central-1"
    with pytest.raises(ValueError, match="not both"):
        QpuSolver.Options(solver="Advantage_system4.1", topology="pegasus")


def test_chain_break_methods(fake_token, qpu_factory, mock_qpu):
    qpu_factory(lambda: mock_qpu())
    q = complete_qubo(16, seed=3)
    for method in ("minimize_energy", "weighted_random", "majority_vote"):
        result = qpu(num_reads=10, chain_break_method=method, chain_strength=0.05).solve(q, seed=0)
        assert result.info["chain_break_method"] == method
        assert result.info["chain_strength"] == 0.05
        assert np.allclose(result.energies, q.energies(result.samples))


def test_plan_states_the_target_its_qubits_and_the_credentials(fake_token):
    lines = QpuSolver(QpuSolver.Options(topology="pegasus")).plan()
    text = "\n".join(lines)
    assert "5640 qubits" in text and "180 variables" in text
    assert "API token from the environment variable DWAVE_API_TOKEN" in text
    assert fake_token not in text
    default = "\n".join(QpuSolver().plan())
    assert "5640 qubits" in default and "4800 qubits" in default  # Advantage and Advantage2
    named = "\n".join(qpu(solver="Advantage2_system1.1").plan())
    assert "'Advantage2_system1.1'" in named
