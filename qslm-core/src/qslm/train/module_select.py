"""``[train.select_modules]``: QUBO-in-the-loop choice of the LoRA modules to train.

After ``warmup`` optimizer steps (every module trains, so each is measured), and then every
``every`` steps, the callback builds :func:`qslm.qubo.modules.module_selection` and trains
only the chosen modules until the next decision:

- importance_i: the mean, over the window's optimizer steps, of the squared norm of module
  i's LoRA gradients (after clipping; an empirical-Fisher trace of the module, which is what
  the loss would lose per unit step if the module stayed frozen), scaled so the top module
  is 1. Squared norms, not norms: they add over parameters, like the budget.
- redundancy_ij: how much two modules read the same input directions: the cosine similarity
  of the Gram matrices ``dW_i^T dW_i`` and ``dW_j^T dW_j`` of their weight deltas
  ``dW = B A`` (modules with the same input width; 0 otherwise), in [0, 1]. A pair's
  penalty is ``redundancy_weight * redundancy_ij * min(importance_i, importance_j)``, so a
  fully redundant pair at weight 1 is worth only its better module.
- budget: trainable LoRA parameters per window (a fraction of all of them, or a count).

A frozen module's gradients are either still computed and dropped before the optimizer step
(``freeze = "drop_grad"``: its importance stays fresh, and torch.distributed's DDP sees the
same parameters every step) or not computed at all (``freeze = "requires_grad"``: cheaper;
its importance stays at its last measured value). Either way its gradient is None at the
optimizer step, and AdamW skips such parameters entirely: no update, no moment update, no
weight decay (tests check the weights stay bit-identical).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from qslm.components import Options
from qslm.errors import QslmError

if TYPE_CHECKING:
    from qslm.context import RunContext
    from qslm.plugins import ComponentRef
    from qslm.qubo.solver import QuboSolver

KEY = "train.select_modules"


class ModuleSelectOptions(Options):
    """``[train.select_modules]``: when and how the LoRA modules to train are chosen."""

    every: int = Field(default=20, ge=1, description="Optimizer steps between two decisions.")
    budget: float | int = Field(
        default=0.5,
        description="Trainable LoRA parameters per window: a fraction of all of them "
        "(a number in (0, 1]) or a count (an integer >= 1).",
    )
    warmup: int = Field(
        default=20,
        ge=1,
        description="Optimizer steps before the first decision; every module trains during "
        "them, so each one's importance is measured.",
    )
    solver: str = Field(default="tabu", description="The QUBO solver (any registered name).")
    fallback: list[str] = Field(
        default=["anneal"], description="Solvers tried in order when the one before fails."
    )
    time_limit: float | None = Field(
        default=None, gt=0, description="Seconds each solver attempt may take."
    )
    redundancy_weight: float = Field(
        default=1.0,
        ge=0,
        description="What redundancy costs: 1 makes a fully redundant pair worth its better "
        "module alone; 0 ignores redundancy.",
    )
    freeze: Literal["drop_grad", "requires_grad"] = Field(
        default="drop_grad",
        description='How modules are frozen: "drop_grad" computes their gradients (fresh '
        "importance, DDP-safe) and drops them before the optimizer step; "
        '"requires_grad" turns gradients off (cheaper; importance of a frozen module stays '
        "at its last measured value; single process only).",
    )
    solvers: dict[str, dict[str, Any]] = Field(
        default={}, description="Options of each named solver: solvers.<name>.<option>."
    )

    @field_validator("budget")
    @classmethod
    def _budget_range(cls, value: float | int) -> float | int:
        if isinstance(value, float) and not 0 < value <= 1:
            raise ValueError("a fraction must be in (0, 1]; give a count as an integer")
        if isinstance(value, int) and value < 1:
            raise ValueError("a parameter count must be at least 1")
        return value


@dataclass
class ModuleSelectConfig:
    """The validated table and its solver chain (primary first), resolved in the registry."""

    options: ModuleSelectOptions
    solvers: list[ComponentRef]


def lora_modules(model: Any) -> dict[str, list[Any]]:
    """Each LoRA-adapted module's name (peft's prefix removed) -> its trainable LoRA tensors."""
    from peft.tuners.lora import LoraLayer

    found: dict[str, list[Any]] = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            params = [p for n, p in module.named_parameters() if "lora_" in n and p.requires_grad]
            if params:
                found[name.removeprefix("base_model.model.")] = params
    return found


def _delta_factors(module: Any) -> tuple[Any, Any] | None:
    """(A, B) of the active adapter of a linear LoRA layer (dW = B A), else None."""
    import torch

    for adapter in getattr(module, "active_adapters", []):
        if adapter not in module.lora_A or adapter not in module.lora_B:
            continue
        a, b = module.lora_A[adapter], module.lora_B[adapter]
        if isinstance(a, torch.nn.Linear) and isinstance(b, torch.nn.Linear):
            return a.weight.detach().float(), b.weight.detach().float()
    return None


def delta_redundancy(factors: list[tuple[Any, Any] | None]) -> np.ndarray:
    """Cosine similarity of the input Gram matrices ``K = dW^T dW`` of each pair of deltas.

    Computed through rank-r factors: <K_i, K_j> = tr(G_i C G_j C^T) with ``G = B^T B`` and
    ``C = A_i A_j^T`` (r x r), so no in x in matrix is formed."""
    import torch

    m = len(factors)
    red = np.zeros((m, m))
    grams = [None if f is None else f[1].T @ f[1] for f in factors]

    def inner(i: int, j: int) -> float:
        c = factors[i][0] @ factors[j][0].T
        return float(torch.trace(grams[i] @ c @ grams[j] @ c.T))

    norms = [0.0 if f is None else max(inner(i, i), 0.0) ** 0.5 for i, f in enumerate(factors)]
    for i in range(m):
        for j in range(i + 1, m):
            fi, fj = factors[i], factors[j]
            if fi is None or fj is None or fi[0].shape[1] != fj[0].shape[1]:
                continue
            if norms[i] > 0 and norms[j] > 0:
                red[i, j] = red[j, i] = min(max(inner(i, j) / (norms[i] * norms[j]), 0.0), 1.0)
    return red


class ModuleSelector:
    """The decisions of one training run (see the module docstring); framework-free, so the
    callback only forwards the Trainer's events to it."""

    def __init__(
        self,
        model: Any,
        options: ModuleSelectOptions,
        solvers: list[tuple[str, QuboSolver]],
        *,
        seed: int = 0,
        log: Callable[..., None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        found = lora_modules(model)
        if not found:
            raise QslmError(f"{KEY}: the model has no trainable LoRA modules to choose from")
        modules = dict(model.named_modules())
        self.names = list(found)
        self.params = [found[n] for n in self.names]
        self.layers = [modules.get(n) or modules.get(f"base_model.model.{n}") for n in self.names]
        self.counts = np.array([sum(p.numel() for p in ps) for ps in self.params], np.int64)
        total = int(self.counts.sum())
        b = options.budget
        self.budget = int(b * total) if isinstance(b, float) else int(b)
        if self.budget < int(self.counts.min()):
            raise QslmError(
                f"{KEY}.budget: {self.budget} parameters is less than the smallest LoRA module "
                f"({int(self.counts.min())} of {total}); raise the budget"
            )
        self.options, self.solvers, self.seed = options, solvers, seed
        self.log = log or (lambda event, **data: None)
        self.progress = progress or (lambda line: None)
        m = len(self.names)
        self.chosen = np.ones(m, dtype=bool)
        self.sq_sum, self.measured = np.zeros(m), np.zeros(m, dtype=np.int64)
        self.last_importance = np.zeros(m)
        self.decisions: list[dict[str, Any]] = []

    @property
    def total_params(self) -> int:
        return int(self.counts.sum())

    def is_decision_step(self, step: int) -> bool:
        o = self.options
        return step >= o.warmup and (step - o.warmup) % o.every == 0 and bool(self.measured.any())

    def measure(self) -> None:
        """Add this step's squared gradient norms; drop frozen modules' grads (drop_grad)."""
        for i, params in enumerate(self.params):
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                self.sq_sum[i] += float(sum(g.detach().float().pow(2).sum() for g in grads))
                self.measured[i] += 1
            if not self.chosen[i]:
                for p in params:
                    p.grad = None

    def apply(self) -> None:
        """Make the chosen modules trainable (and, with requires_grad, the others not)."""
        for on, params in zip(self.chosen, self.params, strict=True):
            for p in params:
                if self.options.freeze == "requires_grad":
                    p.requires_grad_(bool(on))
                if not on:
                    p.grad = None

    def release(self) -> None:
        """Every module trainable again (the end of training)."""
        self.chosen[:] = True
        for params in self.params:
            for p in params:
                p.requires_grad_(True)

    def importance(self) -> np.ndarray:
        fresh = self.measured > 0
        self.last_importance[fresh] = self.sq_sum[fresh] / self.measured[fresh]
        self.sq_sum[:], self.measured[:] = 0.0, 0
        top = float(self.last_importance.max())
        return self.last_importance / top if top > 0 else np.ones(len(self.names))

    def decide(self, step: int) -> dict[str, Any]:
        """Solve this window's QUBO (with fallbacks), apply the choice and return the record."""
        from qslm.qubo.modules import module_selection
        from qslm.qubo.portfolio import failure_lines, solve_with_fallback

        started = time.perf_counter()
        imp = self.importance()
        red = delta_redundancy([_delta_factors(layer) for layer in self.layers])
        pair = red * np.minimum.outer(imp, imp)
        sel = module_selection(
            self.names,
            imp,
            self.counts,
            self.budget,
            pair,
            redundancy_weight=self.options.redundancy_weight,
        )
        window = len(self.decisions)
        try:
            result, attempts = solve_with_fallback(
                sel.qubo,
                self.solvers,
                seed=self.seed + window,
                time_limit=self.options.time_limit,
                check=sel.check,
            )
            solver, sample = result.solver, result.best_sample
            for line in failure_lines(attempts, repr(solver)):
                self.progress(line.replace("  ", "  module selection: ", 1))
        except QslmError as exc:
            # Training goes on: the repair of "everything" keeps the modules with the best
            # importance per parameter within the budget (a greedy choice), and says so.
            attempts = list(getattr(exc, "attempts", [])) or [{"reason": str(exc)}]
            solver, sample = "repair", np.ones(sel.qubo.num_variables, dtype=np.uint8)
            self.progress(f"  module selection: every solver failed; greedy repair used: {exc}")
        choice = sel.decode(sample)
        self.chosen = choice.mask.copy()
        self.apply()
        record = {
            "step": step,
            "window": window,
            "chosen": list(choice.names),
            "objective": round(choice.objective, 6),
            "solver": solver,
            "fallback_used": solver != self.solvers[0][0],
            "attempts": attempts,
            "params": choice.params,
            "budget": self.budget,
            "total_params": self.total_params,
            "repaired": choice.repaired,
            "importance": {n: round(float(v), 6) for n, v in zip(self.names, imp, strict=True)},
            "max_redundancy": round(float(red.max()), 6) if red.size else 0.0,
            "wall_s": round(time.perf_counter() - started, 4),
        }
        self.decisions.append(record)
        self.log("module_selection", **record)
        self.progress(
            f"  step {step}: training {len(choice.names)}/{len(self.names)} modules, "
            f"{choice.params}/{self.total_params} params (budget {self.budget}), "
            f"objective {choice.objective:.4g}, {solver}"
            + (" (fallback)" if record["fallback_used"] else "")
        )
        return record

    def summary(self) -> dict[str, Any]:
        times = {n: 0 for n in self.names}
        for d in self.decisions:
            for n in d["chosen"]:
                times[n] += 1
        solvers: dict[str, int] = {}
        for d in self.decisions:
            solvers[d["solver"]] = solvers.get(d["solver"], 0) + 1
        return {
            "options": self.options.model_dump(mode="json"),
            "modules": len(self.names),
            "total_params": self.total_params,
            "budget": self.budget,
            "decisions": len(self.decisions),
            "fallbacks": sum(d["fallback_used"] for d in self.decisions),
            "solvers": solvers,
            "mean_params": float(np.mean([d["params"] for d in self.decisions]))
            if self.decisions
            else None,
            "windows_chosen": times,
        }


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _broadcast_choice(chosen: np.ndarray) -> np.ndarray:
    """Rank 0's choice on every rank (solvers with time limits may differ between ranks)."""
    import torch.distributed as dist

    if _world_size() == 1:
        return chosen
    box = [chosen.tolist()]
    dist.broadcast_object_list(box, src=0)
    return np.array(box[0], dtype=bool)


def make_callback(selector: ModuleSelector, ctx: RunContext | None = None) -> Any:
    """A ``transformers.TrainerCallback`` that forwards the Trainer's events to ``selector``
    and, at the end, writes the summary to the manifest and ``module_selection.json``."""
    from transformers import TrainerCallback

    class ModuleSelectCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            selector.chosen[:] = True  # warmup, or a resumed window: measure every module
            selector.apply()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            selector.measure()

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step
            if step < state.max_steps and selector.is_decision_step(step):
                if not state.is_world_process_zero:
                    selector.log = lambda event, **data: None
                    selector.progress = lambda line: None
                selector.decide(step)
                chosen = _broadcast_choice(selector.chosen)
                if not np.array_equal(chosen, selector.chosen):
                    selector.chosen = chosen
                    selector.apply()

        def on_train_end(self, args, state, control, **kwargs):
            selector.release()
            if ctx is not None and state.is_world_process_zero:
                summary = selector.summary()
                ctx.manifest["module_selection"] = summary
                path = ctx.path("module_selection.json")
                text = json.dumps({**summary, "history": selector.decisions}, indent=2)
                path.write_text(text + "\n", encoding="utf-8")

    return ModuleSelectCallback()


def callback_for(ctx: RunContext, model: Any) -> Any:
    """The callback for ``model`` (wrapped by peft) as ``[train.select_modules]`` asks, or None
    when the pipeline has no such table."""
    config = getattr(ctx.config, "select_modules", None) if ctx.config is not None else None
    if config is None:
        return None
    if config.options.freeze == "requires_grad" and _world_size() > 1:
        # DDP registers its gradient hooks once; parameters that stop getting gradients
        # make its reducer fail in the middle of a step.
        raise QslmError(
            f'{KEY}.freeze: "requires_grad" works in one process only; use "drop_grad" '
            "(the default) with --nproc"
        )
    solvers = [(ref.spec.name, ref.create()) for ref in config.solvers]
    selector = ModuleSelector(
        model,
        config.options,
        solvers,
        seed=ctx.seed,
        log=ctx.log_event,
        progress=ctx.progress,
    )
    ctx.progress(
        f"  module selection: {len(selector.names)} LoRA modules, {selector.total_params} "
        f"params, budget {selector.budget} per window, first decision at step "
        f"{config.options.warmup}, then every {config.options.every}"
    )
    return make_callback(selector, ctx)
