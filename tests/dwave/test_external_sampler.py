"""dwave.sampler: any installed dimod sampler named "module:Class" works with no new code."""

from __future__ import annotations

import dimod
import dimod.testing
import pytest

from qslm.errors import ConfigError, QslmError
from qslm.testing import random_qubo
from qslm_dwave.external import ExternalSampler


def wrap(sampler, **options):
    return ExternalSampler(ExternalSampler.Options(sampler=sampler, **options))


def test_a_third_party_style_sampler_runs_with_its_parameters(brute_force):
    q = random_qubo(10, seed=1, sense="max")
    solver = wrap("dwave.samplers:SteepestDescentSolver", parameters={"num_reads": 200})
    result = solver.solve(q, seed=4)
    assert result.best_energy == pytest.approx(brute_force(q)[0])
    assert result.info["sampler"] == "dwave.samplers:SteepestDescentSolver"
    assert result.info["library"].startswith("dwave-samplers ")
    assert result.seed == 4  # the sampler takes a seed: the caller's is passed and recorded
    assert solver.plan() == [
        f"dimod sampler dwave.samplers:SteepestDescentSolver from {result.info['library']}"
    ]


def test_a_sampler_without_a_seed_parameter(brute_force):
    dimod.testing.assert_sampler_api(dimod.ExactSolver())
    q = random_qubo(8, seed=2)
    result = wrap("dimod:ExactSolver").solve(q, seed=4)
    assert result.seed is None and result.best_energy == pytest.approx(brute_force(q)[0])
    assert result.info["library"].startswith("dimod ")


def test_unknown_parameters_are_refused_naming_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        wrap("dwave.samplers:SteepestDescentSolver", parameters={"num_sweeps": 5}).solve(
            random_qubo(4)
        )
    assert "parameters: num_sweeps not accepted" in str(err.value)
    assert "num_reads" in str(err.value)


@pytest.mark.parametrize(
    "target, message",
    [
        ("no_such_module:Sampler", "cannot import 'no_such_module:Sampler'"),
        ("dimod:NoSuchSampler", "cannot import"),
        ("numpy:ndarray", "is not a dimod sampler class"),
    ],
)
def test_a_bad_target_fails_the_plan(target, message):
    with pytest.raises(ConfigError, match=message):
        wrap(target).plan()


def test_the_target_must_look_like_module_colon_class():
    with pytest.raises(ValueError, match="sampler"):
        ExternalSampler.Options(sampler="dwave.samplers.SteepestDescentSolver")


def test_credentials_in_the_tables_are_refused(fake_token):
    with pytest.raises(ConfigError, match=r"init\.token: credentials are not taken") as err:
        wrap("dwave.system:DWaveSampler", init={"token": fake_token}).plan()
    assert fake_token not in str(err.value)


def test_a_structured_sampler_that_the_problem_does_not_fit():
    # One Chimera cell (K4,4) holds no triangle, so a complete 6-variable problem cannot map
    # onto it directly.
    solver = wrap(
        "dwave.system.testing:MockDWaveSampler",
        init={"topology_type": "chimera", "topology_shape": [1, 1, 4]},
    )
    with pytest.raises(QslmError, match=r"structured sampler.*'dwave\.qpu'"):
        solver.solve(random_qubo(6, density=1.0))
