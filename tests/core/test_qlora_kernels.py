"""A 4-bit model under training computes the same after an evaluation pass as before it.

bitsandbytes 0.50 repacks 4-bit weights for its CPU inference kernel on the first eval-mode
call and leaves them packed for training; ``keep_training_kernels`` (which the ``lora`` trainer
applies to every 4-bit base) keeps such models on the generic kernel.
"""

from __future__ import annotations

import pytest

pytest.importorskip("bitsandbytes")


def _train_mode_loss(model, ids) -> float:
    import torch

    model.train()
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


def test_an_eval_pass_leaves_training_unchanged(tmp_path):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.lora import _has_4bit_layers
    from qslm.train.qlora import keep_training_kernels, load_causal_lm

    # widths that are multiples of the 4-bit block (64), so the packed kernel would apply
    config = LlamaConfig(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
        attention_dropout=0.0,
    )  # fmt: skip
    transformers.set_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    model = load_causal_lm(str(tmp_path), quantization="nf4")
    assert _has_4bit_layers(model)
    keep_training_kernels(model)

    ids = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    before = _train_mode_loss(model, ids)
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    assert _train_mode_loss(model, ids) == before


def test_a_full_precision_model_has_no_4bit_layers(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.lora import _has_4bit_layers

    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    )  # fmt: skip
    assert not _has_4bit_layers(AutoModelForCausalLM.from_config(config))
