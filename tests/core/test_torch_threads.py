"""How many intra-op threads training asks torch for, and what the launched ranks inherit."""

from __future__ import annotations

import json

import pytest
import torch

from qslm.launch import JOB_ENV, Launch
from qslm.resources import torch_threads, usable_cpus


@pytest.fixture
def no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_the_option_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert torch_threads(3) == 3


def test_omp_num_threads_is_honoured(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert torch_threads() == 1
    assert torch_threads(None) == 1


@pytest.mark.parametrize("raw", ["", "0", "two", "-2"])
def test_an_unusable_omp_num_threads_means_every_cpu(monkeypatch, raw):
    monkeypatch.setenv("OMP_NUM_THREADS", raw)
    assert torch_threads() == usable_cpus()


def test_without_either_every_usable_cpu(no_omp):
    assert torch_threads() == usable_cpus() >= 1


def test_each_launched_rank_gets_its_share(no_omp, monkeypatch):
    monkeypatch.setattr("qslm.launch.usable_cpus", lambda: 16)
    env = Launch(nproc=4).environment({"pipeline": "p.toml"})
    assert env["OMP_NUM_THREADS"] == "4"
    assert json.loads(env[JOB_ENV]) == {"pipeline": "p.toml"}
    assert Launch(nproc=32).environment({})["OMP_NUM_THREADS"] == "1"


def test_the_users_omp_num_threads_reaches_the_ranks(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert Launch(nproc=2).environment({})["OMP_NUM_THREADS"] == "3"


def test_an_accelerate_config_sets_no_share(no_omp, tmp_path):
    # the process count is in accelerate's file; accelerate sets the threads itself
    cfg = tmp_path / "accelerate.yaml"
    cfg.write_text("num_processes: 2\n")
    assert "OMP_NUM_THREADS" not in Launch(accelerate_config=cfg).environment({})


def test_training_uses_omp_num_threads(
    tmp_path, monkeypatch, tiny_options, synthetic_data, make_ctx
):
    from qslm.attention.exact import ExactAttention
    from qslm.train.scratch import ScratchTrainer

    tiny_options.pop("threads", None)
    tiny_options["max_steps"] = 2
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(2)
    try:
        ScratchTrainer(ScratchTrainer.Options(**tiny_options)).train(
            make_ctx(tmp_path), synthetic_data, ExactAttention()
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
