"""[train.select_modules]: decisions logged, only chosen modules train, budget, fallback,
config errors, determinism."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qslm.config import load_pipeline
from qslm.context import RunContext
from qslm.errors import ConfigError, QslmError
from qslm.plugins import ComponentSpec, get_registry
from qslm.qubo.solver import Capabilities, QuboSolver
from qslm.train.module_select import (
    ModuleSelectOptions,
    ModuleSelector,
    callback_for,
    delta_redundancy,
    make_callback,
)

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class Broken(QuboSolver):
    """A solver whose service is down: it raises, as a remote solver's client would."""

    name = "test.broken"
    capabilities = Capabilities()

    def solve(self, qubo, *, seed=None, time_limit=None):
        raise RuntimeError("service unavailable")


def tiny_peft_model(seed: int = 0):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    base = LlamaForCausalLM(config)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0)
    return get_peft_model(base, lora)


def token_data(n: int = 64, length: int = 16, seed: int = 0) -> list[dict]:
    # A learnable pattern (each token predicts the next), so gradients are informative.
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, 48, (n,), generator=g)
    rows = [(torch.arange(length) + s) % 64 for s in starts]
    return [{"input_ids": r, "labels": r} for r in rows]


def lora_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def selector_for(model, solvers=(("tabu", None),), seed=0, **options) -> ModuleSelector:
    reg = get_registry()
    chain = []
    for name, solver in solvers:
        chain.append(
            (name, solver if solver is not None else reg.get("qubo_solver", name).load()())
        )
    return ModuleSelector(model, ModuleSelectOptions(**options), chain, seed=seed)


def backward_once(model, seed: int = 0) -> None:
    batch = token_data(8, seed=seed)
    ids = torch.stack([b["input_ids"] for b in batch])
    model(input_ids=ids, labels=ids).loss.backward()


def train(model, ctx, selector, steps=14, snapshots=None):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            snapshots[state.global_step] = lora_state(model)

    args = TrainingArguments(
        output_dir=str(ctx.build_dir / "checkpoints"),
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        weight_decay=0.1,  # a frozen module must not even decay
        max_steps=steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=ctx.seed,
        data_seed=ctx.seed,
        dataloader_pin_memory=False,
        use_cpu=True,
    )
    callbacks = [make_callback(selector, ctx)]
    if snapshots is not None:
        callbacks.append(Snapshot())
    Trainer(model=model, args=args, train_dataset=token_data(), callbacks=callbacks).train()


@pytest.mark.parametrize("freeze", ["drop_grad", "requires_grad"])
def test_only_the_chosen_modules_change_and_every_decision_is_logged(tmp_path, freeze):
    model = tiny_peft_model()
    ctx = RunContext(config=None, registry=None, build_dir=tmp_path, seed=0)
    selector = selector_for(model, warmup=3, every=4, budget=0.25, freeze=freeze)
    selector.log, snaps = ctx.log_event, {0: lora_state(model)}
    train(model, ctx, selector, steps=14, snapshots=snaps)

    events = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    decisions = [e for e in events if e["event"] == "module_selection"]
    assert [d["step"] for d in decisions] == [3, 7, 11]
    total = selector.total_params
    assert selector.budget == int(0.25 * total) == decisions[0]["budget"]
    for d in decisions:
        assert {"chosen", "objective", "solver", "fallback_used", "params", "budget"} <= d.keys()
        assert d["solver"] == "tabu" and d["fallback_used"] is False
        assert 0 < d["params"] <= d["budget"]
        assert d["chosen"] and set(d["chosen"]) <= set(selector.names)

    # During warmup every module moves; after a decision only the chosen ones, bit for bit.
    def changed(a, b):
        return {
            name
            for name in selector.names
            if any(not torch.equal(a[k], b[k]) for k in a if f"{name}.lora_" in k)
        }

    assert changed(snaps[0], snaps[3]) == set(selector.names)
    for d in decisions:
        for step in range(d["step"] + 1, min(d["step"] + 4, 14) + 1):
            moved = changed(snaps[step - 1], snaps[step])
            assert moved and moved <= set(d["chosen"]), (step, moved, d["chosen"])

    summary = ctx.manifest["module_selection"]
    assert summary["decisions"] == 3 and summary["fallbacks"] == 0
    saved = json.loads((tmp_path / "module_selection.json").read_text())
    assert [h["chosen"] for h in saved["history"]] == [d["chosen"] for d in decisions]
    assert all(p.requires_grad for ps in selector.params for p in ps)  # released at the end


def test_an_absolute_budget_is_respected_and_a_too_small_one_refused():
    model = tiny_peft_model()
    sel = selector_for(model, budget=700)
    sizes = dict(zip(sel.names, sel.counts.tolist(), strict=True))
    # q/o: 4*(32+32) = 256 each; k/v: 4*32 + 16*4 = 192 each, 8 modules in all
    assert sizes["model.layers.0.self_attn.q_proj"] == 256
    assert sizes["model.layers.0.self_attn.k_proj"] == 192
    backward_once(model)
    sel.measure()
    record = sel.decide(step=1)
    assert record["params"] <= 700 and record["budget"] == 700
    assert sum(sizes[n] for n in record["chosen"]) == record["params"]
    with pytest.raises(QslmError, match=r"train\.select_modules\.budget: 100 parameters"):
        selector_for(model, budget=100)


def test_the_fallback_is_used_and_recorded_when_the_primary_solver_fails():
    model = tiny_peft_model()
    lines: list[str] = []
    sel = selector_for(model, solvers=[("test.broken", Broken()), ("tabu", None)])
    sel.progress = lines.append
    backward_once(model)
    sel.measure()
    record = sel.decide(step=5)
    assert record["solver"] == "tabu" and record["fallback_used"] is True
    assert record["attempts"][0]["solver"] == "test.broken"
    assert record["attempts"][0]["reason"] == "RuntimeError: service unavailable"
    assert sel.summary()["fallbacks"] == 1
    # ... and said on the progress reporter: which solver failed, why, what is used instead
    [line] = [x for x in lines if "test.broken" in x]
    assert "RuntimeError: service unavailable" in line and "'tabu'" in line


def test_when_every_solver_fails_a_greedy_repair_keeps_training_and_says_so():
    model = tiny_peft_model()
    lines: list[str] = []
    sel = selector_for(model, solvers=[("test.broken", Broken())])
    sel.progress = lines.append
    backward_once(model)
    sel.measure()
    record = sel.decide(step=5)
    assert record["solver"] == "repair" and record["fallback_used"] is True
    assert 0 < record["params"] <= record["budget"]
    assert any("every solver failed" in line for line in lines)


def test_importance_follows_the_gradients_and_the_choice_maximises_it():
    model = tiny_peft_model()
    sel = selector_for(model, solvers=[("exact", None)], budget=256, redundancy_weight=0.0)
    # Only layer 1's o_proj gets a gradient: it is the most important and, alone, fills 256.
    target = "model.layers.1.self_attn.o_proj"
    for name, params in zip(sel.names, sel.params, strict=True):
        for p in params:
            p.grad = torch.ones_like(p) if name == target else torch.zeros_like(p)
    sel.measure()
    record = sel.decide(step=1)
    assert record["chosen"] == [target] and record["importance"][target] == 1.0


def test_redundancy_of_identical_deltas_is_one_and_of_orthogonal_inputs_zero():
    a = torch.zeros(2, 6)
    a[0, 0] = a[1, 1] = 1.0
    b = torch.randn(5, 2)
    other = torch.zeros(2, 6)
    other[0, 4] = other[1, 5] = 1.0
    red = delta_redundancy([(a, b), (a.clone(), b.clone()), (other, b), None])
    assert red[0, 1] == pytest.approx(1.0)
    assert red[0, 2] == pytest.approx(0.0) and red[0, 3] == 0.0
    assert np.allclose(red, red.T)


def test_same_seed_same_decisions_and_weights(tmp_path):
    runs = []
    for i in range(2):
        model = tiny_peft_model()
        ctx = RunContext(config=None, registry=None, build_dir=tmp_path / str(i), seed=0)
        sel = selector_for(model, warmup=2, every=3, budget=0.5, solvers=[("anneal", None)])
        train(model, ctx, sel, steps=9)
        runs.append(([d["chosen"] for d in sel.decisions], lora_state(model)))
    (d1, w1), (d2, w2) = runs
    assert d1 == d2 and len(d1) == 3
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


PIPELINE = """
[pipeline]
name = "t"
[data]
source = "text"
options = {{ paths = ["corpus.txt"] }}
[train]
trainer = "{trainer}"
[train.select_modules]
{table}
"""


def write_pipeline(tmp_path, table: str, trainer: str = "scratch"):
    (tmp_path / "corpus.txt").write_text("some text\n" * 10)
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE.format(trainer=trainer, table=textwrap.dedent(table)))
    return path


def test_config_errors_name_the_key(tmp_path):
    path = write_pipeline(
        tmp_path,
        """
        every = 0
        budget = 1.5
        evry = 3
        solver = "tabuu"
        fallback = ["anneal"]
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, get_registry())
    text = str(err.value)
    assert "data.options" not in text  # the rest of the file is right
    assert "train.select_modules.every: " in text
    assert "train.select_modules.budget: " in text and "(0, 1]" in text
    assert "train.select_modules.evry: unknown key; did you mean 'every'?" in text


def test_unknown_solver_and_unsupported_trainer_are_named(tmp_path):
    path = write_pipeline(tmp_path, 'solver = "tabuu"\n[train.select_modules.solvers.tabuu]\n')
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, get_registry())
    text = str(err.value)
    assert "data.options" not in text
    assert "train.select_modules.solver: unknown QUBO solver 'tabuu'; did you mean 'tabu'?" in text
    assert "train.select_modules.solvers.tabuu" not in text  # named solver: its options are used
    assert "train.select_modules: trainer 'scratch' does not support module selection" in text


def test_solver_options_are_validated_under_their_key(tmp_path):
    path = write_pipeline(
        tmp_path, 'solver = "tabu"\n[train.select_modules.solvers.tabu]\nnum_chains = 0\n'
    )
    with pytest.raises(ConfigError, match=r"train\.select_modules\.solvers\.tabu\.num_chains"):
        load_pipeline(path, get_registry())


def test_no_table_no_callback(tmp_path):
    ctx = RunContext(config=None, registry=None, build_dir=tmp_path, seed=0)
    assert callback_for(ctx, tiny_peft_model()) is None


def test_every_option_is_documented_in_its_readme_section():
    import re
    from pathlib import Path

    guide = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "select-data.md"
    text = guide.read_text(encoding="utf-8")
    section = text.split("## Choosing LoRA modules while training")[1].split("\n## ")[0]
    missing = [n for n in ModuleSelectOptions.model_fields if not re.search(rf"\b{n}\b", section)]
    assert not missing, missing


LORA_PIPELINE = """
[pipeline]
name = "select-modules"
seed = 3
[data]
source = "text"
[data.options]
paths = ["corpus.txt"]
validation_fraction = 0.15
[train]
trainer = "{trainer}"
[train.options]
{options}
[train.select_modules]
every = 4
warmup = 4
budget = 0.3
solver = "test.broken"
fallback = ["tabu"]
[evaluate.perplexity]
"""


@pytest.fixture
def lora_pipeline(tmp_path):
    """A pipeline over a random tiny Llama saved like a downloaded model, whose primary solver
    (a plugin registered for the test) is down."""
    import transformers
    from conftest import synthetic_texts
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    base = tmp_path / "base"
    tokenizer = train_tokenizer(synthetic_texts(200, 0), 300, 2, 64)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    transformers.set_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    (tmp_path / "corpus.txt").write_text("\n\n".join(synthetic_texts(120, 0)))
    options = (
        f'base_model = "{base}"\nmax_steps = 14\nbatch_size = 8\nlearning_rate = 1e-2\n'
        "threads = 2\nlogging_every = 2"
    )

    def write(trainer: str = "lora"):
        path = tmp_path / "pipeline.toml"
        opts = options if trainer == "lora" else "max_steps = 2"
        path.write_text(LORA_PIPELINE.format(trainer=trainer, options=opts))
        return path

    solvers = get_registry().components["qubo_solver"]
    solvers["test.broken"] = ComponentSpec("qubo_solver", Broken.name, Broken, "t", "t", "0")
    try:
        yield write
    finally:
        del solvers["test.broken"]


def test_a_lora_pipeline_chooses_modules_and_records_it(lora_pipeline, tmp_path):
    from click.testing import CliRunner

    from qslm.cli import cli

    result = CliRunner().invoke(cli, ["run", str(lora_pipeline()), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    build = Path(result.output.strip().splitlines()[-1])
    manifest = json.loads((build / "manifest.json").read_text())
    summary = manifest["module_selection"]
    assert summary["decisions"] == 3 and summary["fallbacks"] == 3  # steps 4, 8, 12
    assert summary["solvers"] == {"tabu": 3}
    assert manifest["components"]["train.select_modules.solver"]["name"] == "test.broken"
    events = [json.loads(line) for line in (build / "train_log.jsonl").read_text().splitlines()]
    decisions = [e for e in events if e["event"] == "module_selection"]
    assert [d["step"] for d in decisions] == [4, 8, 12]
    assert all(d["params"] <= d["budget"] == summary["budget"] for d in decisions)
    assert decisions[0]["attempts"][0]["reason"] == "RuntimeError: service unavailable"
    assert (build / "module_selection.json").is_file()


def test_validate_refuses_the_table_for_a_trainer_without_module_selection(lora_pipeline):
    from click.testing import CliRunner

    from qslm.cli import cli

    result = CliRunner().invoke(cli, ["validate", str(lora_pipeline("scratch"))])
    assert result.exit_code == 2
    assert "train.select_modules: trainer 'scratch' does not support module selection" in (
        result.output
    )
    assert "Traceback" not in result.output
