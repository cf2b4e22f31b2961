"""dwave.exact, dwave.sa and dwave.tabu: validated options tables, dimod's own checks on what
the samplers return, and known answers on a Beasley instance."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from qslm.config import validate_options
from qslm.errors import ConfigError
from qslm.qubo.solver import ProblemTooLarge
from qslm.testing import random_qubo
from qslm_dwave.samplers import ExactSolver, SimulatedAnnealing, Tabu


def options_error(cls, raw):
    with pytest.raises(ConfigError) as err:
        validate_options(cls.Options, raw, file="p.toml", prefix='select.solvers."dwave.sa"')
    return str(err.value)


def test_option_errors_name_the_key_and_suggest():
    assert "did you mean 'num_sweeps'?" in options_error(SimulatedAnnealing, {"num_sweep": 10})
    assert "num_reads: must be greater than or equal to 1" in options_error(
        SimulatedAnnealing, {"num_reads": 0}
    )
    assert "beta_range: must be [hot, cold]" in options_error(
        SimulatedAnnealing, {"beta_range": [2.0, 1.0]}
    )
    assert "needs beta_schedule" in options_error(
        SimulatedAnnealing, {"beta_schedule_type": "custom"}
    )
    assert "leave out beta_range and num_sweeps" in options_error(
        SimulatedAnnealing,
        {"beta_schedule_type": "custom", "beta_schedule": [0.1, 1.0], "num_sweeps": 5},
    )
    assert "seed: must be less than 2147483648" in options_error(Tabu, {"seed": 2**31})
    assert "expected an integer" in options_error(Tabu, {"timeout": "fast"})


def test_options_pass_through_to_the_samplers():
    q = random_qubo(12, seed=1)
    custom = SimulatedAnnealing(
        SimulatedAnnealing.Options(
            num_reads=5,
            beta_schedule_type="custom",
            beta_schedule=[0.1, 0.5, 1.0, 5.0],
            num_sweeps_per_beta=3,
            proposal_acceptance_criteria="Gibbs",
            randomize_order=True,
        )
    )
    result = custom.solve(q, seed=3)
    assert result.info["num_reads"] == 5 and result.info["beta_schedule_type"] == "custom"
    linear = SimulatedAnnealing(
        SimulatedAnnealing.Options(
            num_reads=4, beta_range=[0.5, 8.0], beta_schedule_type="linear", num_sweeps=50
        )
    )
    assert linear.solve(q, seed=3).info["beta_range"] == [0.5, 8.0]
    tabu = Tabu(Tabu.Options(num_reads=3, timeout=5, tenure=4, num_restarts=2))
    assert tabu.solve(q, seed=3).info["timeout_ms"] == 5
    # Its seed option wins over the caller's seed, and is recorded.
    assert Tabu(Tabu.Options(num_reads=2, timeout=5, seed=42)).solve(q, seed=3).seed == 42


def test_tabu_tenure_must_be_below_the_variable_count():
    with pytest.raises(ConfigError, match=r"tenure: must be below the number of variables \(6\)"):
        Tabu(Tabu.Options(tenure=6, timeout=5)).solve(random_qubo(6))


def test_tabu_reads_shrink_to_fit_the_time_limit():
    q = random_qubo(50, seed=2)
    result = Tabu(Tabu.Options(num_reads=5, timeout=10_000)).solve(q, seed=0, time_limit=0.5)
    assert result.status == "timeout" and result.info["timeout_ms"] <= 100


def test_exact_refuses_large_problems_naming_alternatives():
    with pytest.raises(ProblemTooLarge) as err:
        ExactSolver().solve(random_qubo(21, density=0.1))
    assert "21 variables, more than its limit of 20" in str(err.value)
    assert "'dwave.sa'" in str(err.value)


def test_exact_keeps_the_lowest_assignments_in_order():
    q = random_qubo(10, seed=4, sense="max")
    result = ExactSolver(ExactSolver.Options(keep=5)).solve(q)
    x = ((np.arange(1024)[:, None] >> np.arange(10)) & 1).astype(np.uint8)
    top = np.sort(q.energies(x))[::-1][:5]
    assert np.allclose(result.energies, top)


@pytest.mark.parametrize("cls", [SimulatedAnnealing, Tabu])
def test_sample_sets_pass_dimods_checks_and_agree_with_our_energies(cls, monkeypatch):
    import dimod.testing
    import dwave.samplers

    seen = {}
    sampler_cls = {
        SimulatedAnnealing: dwave.samplers.SimulatedAnnealingSampler,
        Tabu: dwave.samplers.TabuSampler,
    }[cls]
    original = sampler_cls.sample

    def spy(self, bqm, **kwargs):
        seen.update(sampler=self, bqm=bqm, sampleset=original(self, bqm, **kwargs))
        return seen["sampleset"]

    monkeypatch.setattr(sampler_cls, "sample", spy)
    q = random_qubo(16, seed=5, sense="max", offset=3.0, labels=[f"x{i}" for i in range(16)])
    options = {"num_reads": 8} if cls is SimulatedAnnealing else {"num_reads": 3, "timeout": 5}
    result = cls(cls.Options(**options)).solve(q, seed=1)

    dimod.testing.assert_sampler_api(seen["sampler"])
    dimod.testing.assert_sampleset_energies(seen["sampleset"], seen["bqm"])
    # The BQM is the minimisation form of f (here -f): the same best, negated.
    assert result.best_energy == pytest.approx(-seen["sampleset"].first.energy)
    assert seen["bqm"].variables == q.labels


@pytest.mark.parametrize(
    "name, options",
    [
        ("dwave.sa", {"num_reads": 32}),
        ("dwave.tabu", {"num_reads": 4}),
    ],
)
def test_best_known_value_on_a_beasley_instance(name, options, shared_dir, qubo_solver):
    from qslm.qubo.io import read_problem

    q = read_problem(shared_dir / "benchmarks/qubo/bqp50_1.qubo", sense="max")
    result = qubo_solver(name, **options).solve(q, seed=0)
    assert result.best_energy == pytest.approx(2098)  # OR-Library's best known


def test_options_are_immutable_and_strict():
    with pytest.raises(ValidationError):
        SimulatedAnnealing.Options(num_reads="10")
    opts = Tabu.Options()
    with pytest.raises(ValidationError):
        opts.num_reads = 3
