"""Registers the built-in trainers."""

from qslm.hookspecs import hookimpl


@hookimpl
def qslm_register_trainers(register):
    register(
        "scratch",
        "qslm.train.scratch:ScratchTrainer",
        summary="A small GPT from scratch: byte-level BPE tokenizer + transformers model",
    )
    register(
        "lora",
        "qslm.train.lora:LoraTrainer",
        summary="Fine-tune a causal LM with a LoRA adapter (QLoRA on a 4-bit NF4 base), peft",
    )
