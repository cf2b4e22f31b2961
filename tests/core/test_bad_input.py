"""Regression tests of issue 15's numbered failures: each bad input gets one clear message and
the documented exit code (2 for the user's mistake, 1 for a failure at run time), never a
traceback, a hang, an abort or a wrong answer. The test names carry the item numbers."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from qslm.cli import cli

PIPELINE = """
[pipeline]
name = "demo"
seed = 7

[data]
source = "text"
[data.options]
paths = ["corpus.txt"]

[train]
trainer = "scratch"
[train.options]
vocab_size = 300
layers = 1
hidden_size = 16
heads = 2
context_length = 16
batch_size = 4
max_steps = 4
threads = 1
"""

CORPUS = "\n\n".join(
    f"Paragraph {i}: the cat sees the ball and a dog follows the old tree." for i in range(30)
)


@pytest.fixture
def project(tmp_path: Path, clean_env, monkeypatch) -> Path:
    (tmp_path / "corpus.txt").write_text(CORPUS + "\n")
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    monkeypatch.setenv("QSLM_FORCE", "0")  # restored after --force sets it
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def assert_clean_error(result, code: int, *fragments: str) -> None:
    """Exit ``code``, one message containing every fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def versions(output: Path) -> list[str]:
    folder = output / "demo"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- 4. a full disk --------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")  # what a full disk gives every write


def test_4_full_disk_writing_the_run_state_is_a_clean_error(project, monkeypatch):
    monkeypatch.setattr("qslm.pipeline.write_run_state", _disk_full)
    out = project / "out"
    result = invoke("run", str(project / "pipeline.toml"), "--output", str(out))
    assert_clean_error(result, 1, "no space left on the disk of", "run again")
    assert versions(out) == []  # no vN, and the staging folder (nothing to resume) is gone


def test_4_full_disk_in_select_is_a_clean_error(project, monkeypatch):
    text = (project / "pipeline.toml").read_text()
    (project / "pipeline.toml").write_text(text + '\n[select]\nsize = 10\nsolver = "tabu"\n')
    monkeypatch.setattr(Path, "write_text", _full_for("select.json", Path.write_text))
    out = project / "out"
    result = invoke("run", str(project / "pipeline.toml"), "--output", str(out))
    assert_clean_error(result, 1, "no space left on the disk of")
    assert versions(out) == []


def _full_for(fragment: str, original):
    def write(self, *args, **kwargs):
        if fragment in str(self):
            _disk_full()
        return original(self, *args, **kwargs)

    return write


def test_4_full_disk_saving_the_model_keeps_the_run_resumable(project, monkeypatch):
    pytest.importorskip("torch")
    import transformers.modeling_utils as mu
    from safetensors import SafetensorError

    original = mu.safe_save_file

    def save(tensors, filename, *args, **kwargs):
        if "checkpoint-" not in str(filename):  # checkpoints fit; the final model does not
            raise SafetensorError("Error while serializing: No space left on device (os error 28)")
        return original(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(mu, "safe_save_file", save)
    out = project / "out"
    pipeline = str(project / "pipeline.toml")
    extra = ("--set", "train.options.checkpoint_every=2", "--output", str(out))
    result = invoke("run", pipeline, *extra)
    assert_clean_error(result, 1, "no space left on the disk of", "keeps checkpoint-4", "--resume")
    assert "the build needs about" in result.output
    [staging] = [p for p in (out / "demo").iterdir()]
    assert staging.name.startswith(".staging") and (staging / "checkpoints").is_dir()

    monkeypatch.setattr(mu, "safe_save_file", original)  # space freed
    resumed = invoke("run", pipeline, *extra, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert versions(out) == ["v1"]


# --- 5. sizes that cannot fit ----------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        ["train.options.vocab_size=1000000000"],
        ["train.options.layers=100000", "train.options.hidden_size=65536"],
        ["train.options.hidden_size=4000000"],
    ],
)
def test_5_sizes_that_cannot_fit_are_refused_by_validate_and_run(project, sets):
    pipeline = str(project / "pipeline.toml")
    args = [a for s in sets for a in ("--set", s)]
    result = invoke("validate", pipeline, *args)
    assert_clean_error(result, 2, "train.options (vocab_size", "of memory", "available")
    out = project / "out"
    run = invoke("run", pipeline, *args, "--output", str(out))
    assert_clean_error(run, 2, "of memory")
    assert versions(out) == []
    assert invoke("validate", pipeline, *args, "--force").exit_code == 0


def test_5_validate_checks_disk_space_for_the_build(project, monkeypatch):
    monkeypatch.setattr("qslm.resources.free_disk", lambda path: 1000)
    result = invoke("validate", str(project / "pipeline.toml"))
    assert_clean_error(result, 2, "the build of demo needs about", "of disk", "1000 B free")


def test_5_the_estimate_counts_the_parameters_transformers_builds():
    pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from qslm.train.scratch import ScratchTrainer

    trainer = ScratchTrainer(ScratchTrainer.Options(vocab_size=300, hidden_size=48, kv_heads=2))
    o = trainer.options

    class Tok:
        eos_token_id = 0

        def __len__(self) -> int:
            return o.vocab_size

    model = AutoModelForCausalLM.from_config(trainer.model_config(Tok()))
    n = sum(p.numel() for p in model.parameters())
    assert f"{n:,} parameters" in trainer.estimate().options


# --- 6. epochs -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "1e300"])
def test_6_epochs_must_be_finite_and_bounded(project, value):
    result = invoke(
        "validate", str(project / "pipeline.toml"), "--set", f"train.options.epochs={value}"
    )
    assert_clean_error(result, 2, "train.options.epochs")


# --- 7. seeds --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["4294967296", "99999999999999999999", "-1"])
def test_7_seed_out_of_range_is_refused_naming_pipeline_seed(project, seed):
    result = invoke("validate", str(project / "pipeline.toml"), "--set", f"pipeline.seed={seed}")
    assert_clean_error(result, 2, "pipeline.seed")


# --- 8, 9, 10. QUBO files --------------------------------------------------------------------


def solve(path: Path, *args: str):
    return invoke("solve", str(path), *args)


@pytest.mark.parametrize("nodes", ["1000000000000", "1" + "0" * 30])
def test_8_a_declared_size_that_cannot_be_allocated_is_refused(tmp_path, clean_env, nodes):
    path = tmp_path / "big.qubo"
    path.write_text(f"p qubo 0 {nodes} 0 0\n")
    assert_clean_error(solve(path), 2, "big.qubo: line 1:", "of memory", "available")


@pytest.mark.parametrize(
    "body",
    [
        '{"linear": [1' + "0" * 400 + "]}",
        '{"linear": [1], "offset": -1' + "0" * 400 + "}",
        '{"linear": [1, 2], "quadratic": [[0, 1, 1' + "0" * 400 + "]]}",
        "[" * 100_000,
    ],
    ids=["weight", "offset", "coupler", "nesting"],
)
def test_9_json_qubo_with_huge_integers_or_deep_nesting(tmp_path, clean_env, body):
    path = tmp_path / "q.json"
    path.write_text(body)
    assert_clean_error(solve(path), 2, "q.json")


OVERFLOW = "p qubo 0 3 3 2\n0 0 1e308\n1 1 -1\n2 2 1e308\n0 1 -1e308\n1 2 -1e308\n"


@pytest.mark.parametrize("solver", ["exact", "anneal", "tabu"])
def test_10_weights_whose_energies_overflow_are_refused(tmp_path, clean_env, solver):
    path = tmp_path / "huge.qubo"
    path.write_text(OVERFLOW)
    assert_clean_error(solve(path, "--solver", solver), 2, "huge.qubo", "overflow")


def test_10_large_finite_weights_give_the_true_optimum_or_a_refusal():
    import itertools

    import numpy as np

    from qslm.errors import QslmError
    from qslm.qubo.anneal import AnnealSolver
    from qslm.qubo.exact import ExactSolver
    from qslm.qubo.model import Qubo

    scale = 1e200
    q = Qubo([scale, -1.0, scale], [[0, -scale, 0], [0, 0, -scale], [0, 0, 0]])
    best = min(itertools.product((0, 1), repeat=3), key=lambda x: q.energies(np.array([x]))[0])
    result = ExactSolver(ExactSolver.Options()).solve(q)
    assert tuple(result.samples[0]) == best and np.isfinite(result.energies[0])
    with pytest.raises(QslmError, match="beyond the 1e\\+30 its arithmetic holds"):
        AnnealSolver(AnnealSolver.Options()).solve(q, seed=0)


# --- 11. resume metrics ----------------------------------------------------------------------


class _Killed(KeyboardInterrupt):
    pass


def test_11_a_resumed_run_reports_the_uninterrupted_metrics(
    tmp_path, monkeypatch, make_ctx, tiny_options, synthetic_data
):
    pytest.importorskip("torch")
    from qslm.attention.exact import ExactAttention
    from qslm.builds import write_json
    from qslm.train import callbacks
    from qslm.train.scratch import ScratchTrainer

    tiny_options.update(max_steps=12, logging_every=5, checkpoint_every=4)
    options = ScratchTrainer.Options(**tiny_options)
    data = synthetic_data

    def train(build: Path, resume: bool = False):
        ctx = make_ctx(build)
        ctx.resume = resume
        return ScratchTrainer(options).train(ctx, data, ExactAttention()).metrics

    whole = train(tmp_path / "whole")
    step_end = callbacks.LossTracker._step_end

    def killed_at_10(self, state):
        step_end(self, state)
        if state.global_step == 10:  # between checkpoint-8 and the end, mid logging window
            raise _Killed

    monkeypatch.setattr(callbacks.LossTracker, "_step_end", killed_at_10)
    with pytest.raises(_Killed):
        train(tmp_path / "cut")
    monkeypatch.setattr(callbacks.LossTracker, "_step_end", step_end)
    resumed = train(tmp_path / "cut", resume=True)

    for key in ("train_loss", "train_loss_mean", "train_steps"):
        assert resumed[key] == whole[key], key
    write_json(tmp_path / "metrics.json", {"train": resumed, "nan": float("nan")})
    text = (tmp_path / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))


# --- 12, 13. smaller -------------------------------------------------------------------------


def test_12_qslm_debug_keeps_the_exit_code(tmp_path, clean_env):
    path = tmp_path / "ok.qubo"
    path.write_text("p qubo 0 2 2 1\n0 0 1\n1 1 -1\n0 1 2\n")
    result = invoke("solve", str(path), "--option", "bogus=1", env={"QSLM_DEBUG": "1"})
    assert result.exit_code == 2, result.output
    assert "bogus" in result.output


def test_13_bitsandbytes_kernel_warning_is_kept_out_of_the_output(caplog):
    pytest.importorskip("transformers")
    from qslm.quiet import hf_quiet

    caplog.set_level(logging.DEBUG)
    with hf_quiet():  # what the trainers and evaluators run under
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'"
        )
    assert not [r for r in caplog.records if "kernels-community" in r.getMessage()]


# --- 14. validate runs the checks run makes --------------------------------------------------


def test_14_validate_refuses_an_output_that_is_a_file(project):
    target = project / "a-file"
    target.write_text("not a folder")
    result = invoke("validate", str(project / "pipeline.toml"), "--set", 'pipeline.output="a-file"')
    assert_clean_error(result, 2, "is not writable", "a-file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_14_validate_refuses_an_unwritable_output(project):
    ro = project / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    result = invoke("validate", str(project / "pipeline.toml"), "--output", str(ro))
    assert_clean_error(result, 2, "is not writable")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("caf\xe9 au lait\n\nsecond paragraph\n".encode("latin-1"), "not UTF-8 text"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x90binary", "not UTF-8 text"),
    ],
    ids=["latin-1", "binary"],
)
def test_14_validate_refuses_corpus_files_run_cannot_read(project, content, fragment):
    (project / "corpus.txt").write_bytes(content)
    result = invoke("validate", str(project / "pipeline.toml"))
    assert_clean_error(result, 2, "corpus.txt: not UTF-8 text (line 1", fragment)


def test_14_an_output_path_with_a_nul_is_refused(project):
    result = invoke(
        "validate", str(project / "pipeline.toml"), "--set", 'pipeline.output="a\u0000b"'
    )
    assert_clean_error(result, 2, "pipeline.output: a path cannot hold a NUL")


def test_14_an_empty_path_is_refused(project):
    result = invoke("validate", str(project / "pipeline.toml"), "--set", 'data.options.paths=[""]')
    assert_clean_error(result, 2, "data.options.paths[0]: an empty path")


# --- 15, 16 ----------------------------------------------------------------------------------


def test_15_a_byte_order_mark_is_accepted(project):
    (project / "pipeline.toml").write_bytes(b"\xef\xbb\xbf" + PIPELINE.encode())
    result = invoke("validate", str(project / "pipeline.toml"))
    assert result.exit_code == 0, result.output


def test_16_builds_list_takes_an_output_folder_or_a_pipeline_folder(tmp_path, monkeypatch):
    build = tmp_path / "out" / "demo" / "v1"
    build.mkdir(parents=True)
    (build / "manifest.json").write_text('{"version": "v1", "created": "2026-01-01"}')
    monkeypatch.chdir(tmp_path)
    for where in (str(tmp_path / "out"), "out", "out/demo", str(tmp_path / "out" / "demo")):
        result = invoke("builds", "list", where)
        assert result.exit_code == 0, (where, result.output)
        assert result.output.startswith("* demo@v1  2026-01-01"), (where, result.output)


# --- 2 (the CLI half): a tiny temperature ----------------------------------------------------


@pytest.mark.parametrize("temperature", ["1e-300", "5e-324"])
def test_2_a_tiny_temperature_decodes_greedily(tiny_model_build, temperature):
    pytest.importorskip("torch")
    build = str(tiny_model_build)
    args = ("generate", build, "Simulated", "--max-new-tokens", "4")
    tiny = invoke(*args, "--temperature", temperature)
    greedy = invoke(*args, "--temperature", "0")
    assert tiny.exit_code == 0, tiny.output
    assert tiny.output == greedy.output


def test_2_a_nan_temperature_is_refused(tiny_model_build):
    result = invoke("generate", str(tiny_model_build), "x", "--temperature", "nan")
    assert_clean_error(result, 2, "--temperature")
