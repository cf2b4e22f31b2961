"""The build report: written by every pipeline run, with valid PNG plots; `qslm report`
rewrites it; a broken section or a failing report never costs the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import synthetic_texts

from qslm.cli import cli
from qslm.report import report_or_warn, write_report

PNG = b"\x89PNG\r\n\x1a\n"

PIPELINE = """
[pipeline]
name = "reported"
seed = 5

[data]
source = "text"
[data.options]
paths = ["corpus.txt"]

[select]
size = 120
solver = "exact"      # refuses this many variables: the report must show the fallback
fallback = ["tabu"]
time_limit = 5.0
[select.options]
similarity = "tfidf"

[attention]
backend = "exact"

[train]
trainer = "scratch"
[train.options]
vocab_size = 300
hidden_size = 32
heads = 4
kv_heads = 2
context_length = 32
batch_size = 8
max_steps = 10
logging_every = 2
threads = 2

[evaluate.perplexity]

[evaluate.attention-error]
backend = "sampled"
backend_options = { strategy = "hybrid", samples = 8 }
max_tokens = 128
"""


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG, path
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01  # something is drawn, not a blank canvas


@pytest.fixture(scope="module")
def pipeline_build(tmp_path_factory):
    pytest.importorskip("torch")
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "corpus.txt").write_text("\n\n".join(synthetic_texts(160, 0)))
    (tmp / "pipeline.toml").write_text(PIPELINE)
    out = tmp / "builds"
    result = CliRunner().invoke(cli, ["run", str(tmp / "pipeline.toml"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1]), out


def test_a_pipeline_build_has_a_report_with_every_plot(pipeline_build):
    build, _ = pipeline_build
    report = (build / "report.md").read_text()
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["report"] == "report.md"
    assert report.startswith("# Build report: reported\n")
    for name in ("loss.png", "compare.png", "select.png", "attention_error.png"):
        assert f"](report/{name})" in report
        assert_png(build / "report" / name)
    assert "warning" not in report
    # The numbers in the tables are the build's own.
    steps = [
        json.loads(line)
        for line in (build / "train_log.jsonl").read_text().splitlines()
        if '"event": "train"' in line
    ]
    assert f"| training | {len(steps)} | {steps[0]['loss']:.4g} | {steps[-1]['loss']:.4g} |" in (
        report
    )
    ppl = manifest["metrics"]["perplexity"]["perplexity"]
    assert f"| perplexity | perplexity | {ppl:.4g} |" in report
    assert "| 1 | exact | too_large |  |" in report and "| 2 | tabu | ok |" in report
    assert "Energies and objectives below: higher is better." in report  # sense max, recorded
    assert manifest["select"]["qubo"]["sense"] == "max"
    assert "2 attempt(s), 1 failed (each failure fell back to the next solver)" in report
    error = manifest["metrics"]["attention-error"]["attention_rel_error_layer_0"]
    assert f"| layer 0 | {error:.4g} |" in report


def test_builds_show_prints_the_report_and_qslm_report_rewrites_it(pipeline_build):
    build, out = pipeline_build
    shown = CliRunner().invoke(cli, ["builds", "show", "reported@latest", "--output", str(out)])
    assert shown.exit_code == 0 and f"# report: {build / 'report.md'}" in shown.output
    before = (build / "report.md").read_text()
    (build / "report.md").unlink()
    (build / "report" / "loss.png").unlink()
    again = CliRunner().invoke(cli, ["report", "reported@latest", "--output", str(out)])
    assert again.exit_code == 0 and again.output.strip() == str(build / "report.md")
    assert (build / "report.md").read_text() == before
    assert_png(build / "report" / "loss.png")


def test_validation_loss_fallbacks_and_module_selection_are_drawn(tmp_path):
    events = [{"event": "train", "step": s, "loss": 5.0 / s} for s in (1, 2, 3, 4)]
    events += [{"event": "eval", "step": s, "eval_loss": 4.0 / s} for s in (2, 4)]
    failed = {"solver": "dwave.qpu", "status": "failed", "reason": "no credentials"}
    events += [
        {
            "event": "module_selection",
            "step": s,
            "solver": "tabu",
            "fallback_used": True,
            "objective": 1.5 * s,
            "attempts": [failed, {"solver": "tabu", "status": "ok", "energy": -2.0 * s}],
            "chosen": ["layers.0.q_proj"],
            "params": 100,
            "budget": 120,
        }
        for s in (2, 4)
    ]
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{cut")
    manifest = {"name": "lora", "version": "v3", "metrics": {}}
    report = write_report(tmp_path, manifest).read_text()
    assert "| validation | 2 | 2 | 1 | 1 |" in report
    assert "2 module-selection QUBO(s) solved during training, 2 by a fallback solver." in report
    assert "| 4 | tabu | yes | -8 | 6 | 1 | 100/120 |" in report
    assert "This build ran no QUBO stage" not in report and "No evaluator metrics" in report
    for name in ("loss.png", "module_selection.png"):
        assert_png(tmp_path / "report" / name)


def test_a_broken_section_becomes_a_warning_and_the_rest_is_written(tmp_path):
    (tmp_path / "train_log.jsonl").write_text(json.dumps({"event": "train", "step": 1, "loss": 2}))
    manifest = {"name": "x", "select": {"attempts": [], "comparison": 5}, "metrics": {}}
    report = write_report(tmp_path, manifest).read_text()
    assert "> **warning**: this section failed: AttributeError" in report
    assert "## Training" in report and "## Attention error" in report
    assert_png(tmp_path / "report" / "loss.png")


def test_a_failing_report_warns_and_never_raises(tmp_path):
    missing = tmp_path / "gone"  # no such folder: writing the report fails
    warnings: list[str] = []
    manifest: dict = {"name": "x"}
    report_or_warn(missing, manifest, warnings.append)
    assert len(warnings) == 1 and "warning: no report (FileNotFoundError" in warnings[0]
    assert "report" not in manifest
