"""Text generation from a loaded build with ``model.generate``, seeded per request."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from qslm.errors import ConfigError

MIN_TEMPERATURE = 0.01
"""Temperatures below this decode greedily, in `qslm generate`/`chat` and every server route.
Dividing the logits by a temperature such as 1e-300 overflows to inf and the softmax to NaN;
at 0.01 a logit lead of 0.1 is already e^10 times as likely, so sampling there is greedy in
all but near ties; and 0.01 keeps logits of 100 under float16's range (65504) on accelerators."""


@dataclass(frozen=True)
class GenerationParams:
    """How to continue a prompt. ``temperature == 0`` (or below :data:`MIN_TEMPERATURE`) is
    greedy decoding; ``top_k == 0`` and ``top_p == 1`` switch those filters off; ``seed=None``
    draws a fresh seed."""

    max_new_tokens: int = 64
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    seed: int | None = None

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first parameter out of range."""
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be at least 1, not {self.max_new_tokens}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"--temperature must be >= 0 (0 = greedy), not {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"--top-k must be >= 0 (0 = off), not {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed must be in [0, 2**63), not {self.seed}")

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy: temperature 0, or below :data:`MIN_TEMPERATURE`."""
        return self.temperature < MIN_TEMPERATURE

    @property
    def deterministic(self) -> bool:
        """Whether the same prompt always gives the same text (greedy, or a fixed seed)."""
        return self.greedy or self.seed is not None


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    prompt_tokens: int


def prompt_length(tokenizer: Any, prompt: str) -> int:
    """The number of tokens ``prompt`` encodes to (special tokens included)."""
    return len(tokenizer(prompt)["input_ids"])


def _sampling_processors(params: GenerationParams) -> list[Any]:
    """Temperature, top-k and top-p from transformers, then a draw from the request's own
    ``torch.Generator``.

    Why not ``do_sample=True``: ``generate`` samples from torch's global RNG, so two requests
    generated at once in the server's threads would disturb each other's draws and a fixed seed
    would not reproduce. Drawing here with a per-request generator and leaving only the drawn
    token finite lets greedy decoding pick it: the same distribution as ``do_sample``, seeded
    per request and thread-safe.
    """
    import torch
    from transformers import (
        LogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    seed = params.seed if params.seed is not None else secrets.randbits(63)
    generator = torch.Generator().manual_seed(seed)

    class DrawFromGenerator(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            probs = torch.softmax(scores.float(), dim=-1).cpu()
            drawn = torch.multinomial(probs, 1, generator=generator).to(scores.device)
            out = torch.full_like(scores, float("-inf"))
            return out.scatter(1, drawn, 0.0)

    processors: list[Any] = [TemperatureLogitsWarper(params.temperature)]
    if params.top_k > 0:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1:
        processors.append(TopPLogitsWarper(params.top_p))
    processors.append(DrawFromGenerator())
    return processors


def generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    params: GenerationParams,
    *,
    streamer: Any = None,
    stop_strings: list[str] | None = None,
) -> Generation:
    """Continue ``prompt``; returns the new text (special tokens dropped) and its token count.

    ``streamer`` (a ``transformers.TextStreamer``) receives the text as it is generated.
    """
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    params.check()
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    n_prompt = int(inputs["input_ids"].shape[1])
    config = GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        do_sample=False,  # sampling, when asked for, happens in _sampling_processors
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        stop_strings=stop_strings,
    )
    processors = LogitsProcessorList([] if params.greedy else _sampling_processors(params))
    extra = {"tokenizer": tokenizer} if stop_strings else {}
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            generation_config=config,
            logits_processor=processors,
            streamer=streamer,
            **extra,
        )
    new = out[0, n_prompt:]
    text = tokenizer.decode(new, skip_special_tokens=True)
    return Generation(text=text, tokens=int(new.shape[0]), prompt_tokens=n_prompt)
