"""The data behind the report's evaluation plots: trained against its reference, metrics
across earlier builds, sizes and counts as a table, and one stated direction per plot."""

from __future__ import annotations

import json
import re

from qslm.report import select_energy_direction, write_report
from qslm.report_metrics import comparisons, direction, earlier_builds, history

LAYER = re.compile(r"^attention_rel_error_layer_(\d+)$")


def _manifest(ppl: float, kind: str = "full", **extra) -> dict:
    return {
        "name": "demo",
        "artifact": {"kind": kind},
        "metrics": {
            "perplexity": {
                "perplexity": ppl,
                "perplexity_untrained": 400.0,
                "perplexity_ratio": 400.0 / ppl,
                "eval_tokens": 1200,
            },
            "attention-error": {
                "perplexity_exact": ppl,
                "perplexity_backend": ppl * 1.1,
                "attention_rel_error_layer_0": 0.2,
            },
            **extra,
        },
    }


def test_trained_is_compared_with_the_untrained_model_or_the_base():
    found = {(c.evaluator, c.metric): c for c in comparisons(_manifest(20.0))}
    ppl = found[("perplexity", "perplexity")]
    assert (ppl.value, ppl.reference, ppl.better) == (20.0, 400.0, "lower")
    assert ppl.reference_label == "untrained (same initialisation)"
    backend = found[("attention-error", "perplexity")]
    assert (backend.value, backend.reference, backend.reference_label) == (
        22.0,
        20.0,
        "exact attention",
    )
    assert len(found) == 2  # eval_tokens and the ratio have no reference of their own
    [tuned] = [c for c in comparisons(_manifest(20.0, "adapter")) if c.evaluator == "perplexity"]
    assert tuned.reference_label == "base model"


def test_directions_are_one_per_metric():
    assert direction("perplexity") == "lower" and direction("train_loss") == "lower"
    assert direction("perplexity_ratio") == "higher"
    assert direction("concept_coverage_untrained") == "higher"
    assert direction("eval_tokens") is None


def _builds(tmp_path, values):
    root = tmp_path / "builds" / "demo"
    for i, ppl in enumerate(values, start=1):
        (root / f"v{i}").mkdir(parents=True)
        (root / f"v{i}" / "manifest.json").write_text(json.dumps(_manifest(ppl)))
    (root / "v9").mkdir()
    (root / "v9" / "manifest.json").write_text("{cut")  # unreadable: skipped
    return root


def test_history_runs_over_the_earlier_builds_and_shows_a_regression(tmp_path):
    root = _builds(tmp_path, [30.0, 20.0])
    staging = root / ".staging-x"
    staging.mkdir()
    series = history(staging, _manifest(25.0), LAYER)
    assert series[("perplexity", "perplexity")] == [
        ("v1", 30.0),
        ("v2", 20.0),
        ("this build", 25.0),
    ]
    assert ("perplexity", "eval_tokens") not in series  # a count: in the table, not plotted
    assert not any(LAYER.match(m) for _, m in series)
    # rewriting the report of v2 later shows v1 and v2 only
    assert [v for v, _ in earlier_builds(root / "v2")] == ["v1"]
    assert history(root / "v2", _manifest(20.0), LAYER)[("perplexity", "perplexity")] == [
        ("v1", 30.0),
        ("v2", 20.0),
    ]


def test_the_report_has_the_plots_a_table_of_counts_and_no_log_bars(tmp_path):
    root = _builds(tmp_path, [30.0])
    build = root / "v2"
    build.mkdir()
    report = write_report(build, _manifest(25.0)).read_text()
    assert "](report/compare.png)" in report and "](report/history.png)" in report
    assert (build / "report" / "compare.png").is_file()
    assert not (build / "report" / "metrics.png").exists()
    assert "| perplexity | eval_tokens | 1200 |" in report.split("Sizes and counts:")[1]
    assert "| perplexity | perplexity | 25 | lower |" in report
    assert "| perplexity | perplexity | 25 | 400 | untrained (same initialisation) |" in report


def test_select_states_one_direction_from_the_recorded_sense():
    assert select_energy_direction({"qubo": {"sense": "max"}}) == "higher"
    assert select_energy_direction({"qubo": {"sense": "min"}}) == "lower"
    assert select_energy_direction({}) == "higher"  # the selection objective is maximised


def test_module_selection_best_energy_is_the_largest_of_a_maximised_objective():
    from qslm.report import _best_energy

    ok = [{"status": "ok", "energy": e} for e in (1.0, 3.0)]
    assert _best_energy({"attempts": [*ok, {"status": "failed", "energy": 9.0}]}) == 3.0
