"""The training side of ``benchmarks/gpu.py``: one model folder built from an architecture config
with random weights, then the same LoRA fine-tuning through plain transformers + peft (the
reference) and through qslm's trainers, each timed and measured the same way.

Every variant trains inside ``transformers.Trainer``; a :class:`StepClock` callback (added to
every Trainer this process makes, the reference's and qslm's alike) records the wall time of
each optimiser step (after ``torch.cuda.synchronize``), the tokens of each step, and the logged
losses. Throughput counts the steps after ``warmup_steps`` only, so kernel compilation and
allocator warm-up are left out on both sides.
"""

from __future__ import annotations

import gc
import json
import math
import time
from pathlib import Path
from typing import Any

SEED = 1234
LORA = dict(r=16, alpha=32.0, dropout=0.0, target_modules="all-linear")  # the QLoRA recipe
WORDS = (
    "the model learns a small language from these words while the optimiser takes its steps",
    "and every layer adapts a little more than the one before it",
)
WORDS = tuple(" ".join(WORDS).split())


def build_model(folder: Path, config: dict[str, Any], device: str) -> None:
    """A random-weight model of the architecture ``config`` (bf16 on CUDA), a BPE tokenizer,
    and nothing downloaded: speed and memory depend on the shapes, not the weights' values."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    from qslm.train.scratch import train_tokenizer

    tokenizer = train_tokenizer(corpus(50, 60), 500, 2, config["max_position_embeddings"])
    eos = tokenizer.eos_token_id
    kind = config["model_type"]
    cfg = AutoConfig.for_model(
        kind,
        **{k: v for k, v in config.items() if k != "model_type"},
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    transformers.set_seed(SEED)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # initialising on the GPU takes seconds, not minutes
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    release()


def corpus(n: int, words: int) -> list[str]:
    """``n`` distinct records of about ``words`` words each (long enough to fill a sequence)."""
    import random

    rng = random.Random(SEED)
    return [f"record {i}: " + " ".join(rng.choice(WORDS) for _ in range(words)) for i in range(n)]


def release() -> None:
    """Free what the last variant left on the GPU, so the next one's peak is its own."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class StepClock:
    """Times optimiser steps and keeps the logged losses of every Trainer in this process."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.step_times: list[float] = []
        self.step_tokens: list[int] = []
        self.losses: dict[int, float] = {}
        self._last = 0.0
        self._seen = 0

    def install(self) -> None:
        """Add this clock to every ``transformers.Trainer`` created from now on."""
        import transformers

        clock = self
        original = transformers.Trainer.__init__

        def init(trainer: Any, *args: Any, **kwargs: Any) -> None:
            original(trainer, *args, **kwargs)
            trainer.add_callback(clock.callback())

        transformers.Trainer.__init__ = init

    def callback(self) -> Any:
        import torch
        from transformers import TrainerCallback

        clock = self

        def now() -> float:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                clock._last, clock._seen = now(), state.num_input_tokens_seen

            def on_step_end(self, args, state, control, **kwargs):
                t = now()
                clock.step_times.append(t - clock._last)
                clock.step_tokens.append(state.num_input_tokens_seen - clock._seen)
                clock._last, clock._seen = t, state.num_input_tokens_seen

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    clock.losses[state.global_step] = float(logs["loss"])

        return Callback()

    def result(self, warmup: int) -> dict[str, Any]:
        times, tokens = self.step_times[warmup:], self.step_tokens[warmup:]
        seconds = sum(times)
        last = max(self.losses) if self.losses else None
        return {
            "steps": len(self.step_times),
            "timed_steps": len(times),
            "tokens_per_step": tokens[0] if tokens else 0,
            "tokens_per_s": sum(tokens) / seconds if seconds > 0 else 0.0,
            "seconds_per_step": seconds / len(times) if times else math.nan,
            "first_loss": self.losses.get(min(self.losses)) if self.losses else None,
            "final_loss": self.losses[last] if last is not None else None,
        }


def train_reference(base: Path, records: list[str], work: Path, s: dict[str, Any]) -> None:
    """What a user writes with transformers + peft alone: load in bf16 on CUDA (float32 on the
    CPU), tokenize text + eos cut to the sequence length, LoRA on every linear layer, Trainer."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback

    tokenizer = AutoTokenizer.from_pretrained(base)
    dtype = torch.bfloat16 if s["bf16"] else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, device_map=s["device"])
    eos = tokenizer.eos_token_id
    examples = []
    for ids in tokenizer(records)["input_ids"]:
        ids = [*ids, eos][: s["seq_len"]]
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids})
    transformers.set_seed(SEED)
    model = get_peft_model(
        model,
        LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
            task_type="CAUSAL_LM",
        ),
    )
    args = TrainingArguments(
        output_dir=str(work / "reference-out"),
        per_device_train_batch_size=s["batch"],
        learning_rate=2e-4,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_steps=s["steps"],
        logging_steps=1,
        save_strategy="no",
        seed=SEED,
        data_seed=SEED,
        bf16=s["bf16"],
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True)
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # raw dicts on stdout; qslm removes it too
    trainer.train()
    del model, trainer


def qslm_pipeline(base: Path, data: Path, s: dict[str, Any], trainer: str, **extra: Any) -> str:
    """The pipeline file of one qslm variant: the same records, LoRA settings, batch, learning
    rate, schedule, steps and seed as the reference."""
    options: dict[str, Any] = {
        "base_model": str(base),
        "r": LORA["r"],
        "alpha": LORA["alpha"],
        "dropout": LORA["dropout"],
        "target_modules": LORA["target_modules"],
        "template": "plain",
        "loss_on": "all",
        "max_length": s["seq_len"],
        "batch_size": s["batch"],
        "learning_rate": 2e-4,
        "schedule": "linear",
        "warmup_ratio": 0.0,
        "max_steps": s["steps"],
        "logging_every": 1,
        **extra,
    }
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    return (
        f'[pipeline]\nname = "gpu-bench"\nseed = {SEED}\n\n[data]\nsource = "jsonl"\n'
        f"[data.options]\npaths = [{json.dumps(str(data))}]\nvalidation_fraction = 0.0\n\n"
        f'[attention]\nbackend = "exact"\n\n[train]\ntrainer = "{trainer}"\n'
        f"[train.options]\n{lines}\n\n[evaluate]\n"
    )


def train_qslm(pipeline: Path, out: Path) -> Path:
    """Run a qslm pipeline through its Python API; returns the build folder."""
    from qslm.config import load_pipeline
    from qslm.pipeline import run_pipeline
    from qslm.plugins import get_registry

    registry = get_registry()
    config = load_pipeline(pipeline, registry, output=str(out))
    return run_pipeline(config, registry, progress=lambda line: None)


def run_variant(name: str, model_dir: Path, work: Path, s: dict[str, Any]) -> dict[str, Any]:
    """Train one variant in this process and measure it: tokens/s, peak GPU memory, losses."""
    import torch

    records = corpus(s["steps"] * s["batch"] + 8, int(s["seq_len"] * 1.2))
    data = work / "records.jsonl"
    data.write_text("".join(json.dumps({"text": r}) + "\n" for r in records))
    clock = CLOCK
    clock.reset()
    release()
    cuda = torch.cuda.is_available()
    before = torch.cuda.memory_allocated() if cuda else 0
    started = time.perf_counter()
    build = None
    if name == "reference":
        train_reference(model_dir, records, work, s)
    else:
        extra = dict(VARIANTS[name][1])
        extra.setdefault("bf16", s["bf16"])
        if name == "qslm-lora-bf16" and s["merge"]:
            extra["merge"] = True  # the build `qslm serve` is measured on
        pipeline = work / f"{name}.toml"
        pipeline.write_text(qslm_pipeline(model_dir, data, s, VARIANTS[name][0], **extra))
        build = train_qslm(pipeline, work / "builds")
    result = clock.result(s["warmup_steps"])
    result.update(
        wall_s=round(time.perf_counter() - started, 2),
        peak_gpu_bytes=torch.cuda.max_memory_allocated() - before if cuda else None,
        build=str(build) if build else None,
    )
    release()
    return result


CLOCK = StepClock()
# name -> (qslm trainer, its extra options); "reference" is plain transformers + peft.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "qslm-lora-bf16": ("lora", {}),
    "qslm-lora-nf4": ("lora", {"quantization": "nf4"}),
    "qslm-unsloth-bf16": ("unsloth", {"dtype": "bfloat16", "gradient_checkpointing": False}),
}
