"""Dynamic batching for ``qslm serve``: requests waiting at the same moment are decoded together
in one left-padded ``model.generate`` call, each with its own sampling parameters, seed, stop
strings, token limit, streaming callback and cancellation.

Why ``model.generate`` and not transformers' continuous batching (``init_continuous_batching``
/ ``ContinuousBatchingManager``, which ``transformers serve --continuous-batching`` uses): with
transformers 5.24 on the CPU it works and gives the same greedy tokens, but it samples every
request from torch's global RNG inside one background loop, so a seeded request's draw depends
on which other requests share its batch (seeds would not reproduce), and on the CPU its paged
eager attention decoded 32 requests at 1062 tokens/s against 1304 for one padded ``generate``
call (benchmarks/batching_engines.py, docs/how-to/serving.md). Per-row processors and stopping
criteria are the library's own extension points for ``generate``; the only scheduling written
here is the queue that groups waiting requests, because ``generate`` takes a batch, not a
stream of requests.
A request arriving while a batch runs waits for the next batch (no joining mid-decode).
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from qslm.inference.generation import MIN_TEMPERATURE  # one greedy floor for CLI and server


@dataclass(frozen=True)
class Sampling:
    """How one request picks its tokens; ``temperature < MIN_TEMPERATURE`` is greedy."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < MIN_TEMPERATURE


@dataclass(frozen=True)
class Finished:
    """What a request produced: its new token ids (end-of-turn token excluded), the decoded
    text (cut before a stop string) and why it ended: ``stop``, ``length`` or ``cancelled``."""

    token_ids: list[int]
    text: str
    finish_reason: str
    prompt_tokens: int


@dataclass(eq=False)
class Job:
    """One request in the queue. ``on_token(token_id)`` runs on the worker thread for each new
    token (not for the end-of-turn token); set ``cancelled`` to stop its generation."""

    prompt_ids: list[int]
    sampling: Sampling
    stop: list[str] = field(default_factory=list)
    adapter: str | None = None  # PEFT adapter name when several share one base model
    on_token: Callable[[int], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    result: Future = field(default_factory=Future)
    generated: list[int] = field(default_factory=list)
    done: str | None = None
    text: str | None = None  # set when a stop string cut the text


class RowSampling:
    """A ``LogitsProcessor`` that samples each row with its own request's temperature, top-k,
    top-p and ``torch.Generator`` and leaves only the drawn token finite (greedy rows keep
    their scores): ``generate`` then picks it with ``do_sample=False``. Same distribution as
    ``do_sample=True``, but seeded per request, so a draw does not depend on the batch."""

    def __init__(self, jobs: list[Job]) -> None:
        import torch
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.torch = torch
        self.rows: list[tuple[list[Any], Any] | None] = []
        for job in jobs:
            s = job.sampling
            if s.greedy:
                self.rows.append(None)
                continue
            warpers: list[Any] = [TemperatureLogitsWarper(s.temperature)]
            if s.top_k > 0:
                warpers.append(TopKLogitsWarper(s.top_k))
            if s.top_p < 1:
                warpers.append(TopPLogitsWarper(s.top_p))
            seed = s.seed if s.seed is not None else secrets.randbits(63)
            self.rows.append((warpers, torch.Generator().manual_seed(seed)))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        out = scores.clone()
        for r, row in enumerate(self.rows):
            if row is None:
                continue
            warpers, generator = row
            s = scores[r : r + 1]
            for warper in warpers:
                s = warper(input_ids[r : r + 1], s)
            probs = torch.softmax(s.float(), dim=-1).cpu()
            drawn = torch.multinomial(probs, 1, generator=generator).to(scores.device)
            out[r] = float("-inf")
            out[r, drawn[0, 0]] = 0.0
        return out


class RowStops:
    """A ``StoppingCriteria`` that follows each row: hands its new token to the request's
    callback, and ends the row at an end-of-turn token, a stop string, its own token limit or
    its cancellation (a client that went away). ``generate`` stops when every row has."""

    def __init__(self, jobs: list[Job], tokenizer: Any, end_ids: set[int], prompt_len: int):
        import torch

        self.torch, self.jobs, self.tokenizer = torch, jobs, tokenizer
        self.end_ids, self.prompt_len = end_ids, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        done = []
        for r, job in enumerate(self.jobs):
            if job.done is None:
                self._step(job, int(input_ids[r, -1]))
            done.append(job.done is not None)
        return self.torch.tensor(done, dtype=self.torch.bool, device=input_ids.device)

    def _step(self, job: Job, token: int) -> None:
        if job.cancelled.is_set():
            job.done = "cancelled"
            return
        if token in self.end_ids:
            job.done = "stop"
            return
        job.generated.append(token)
        if job.stop:
            text = self.tokenizer.decode(job.generated, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in job.stop) if i >= 0), default=-1)
            if cut >= 0:
                job.text, job.done = text[:cut], "stop"
                return
        if job.on_token is not None:
            job.on_token(token)
        if len(job.generated) >= job.sampling.max_new_tokens:
            job.done = "length"


def end_of_turn_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the tokenizer's EOS, the model's generation config EOS
    (chat models list their end-of-turn token there) and common end-of-turn markers."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        ids.update(value if isinstance(value, list) else [value] if value is not None else [])
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>") if t in vocab)
    return ids


class Batcher:
    """Decodes queued :class:`Job` s in batches of up to ``max_batch`` on ``workers`` threads.

    ``max_batch=1`` with several workers is the unbatched server (one ``generate`` per request,
    run side by side); one worker with ``max_batch=N`` batches, waiting up to ``gather_s``
    after the first queued request for others to join it.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int,
        workers: int = 1,
        gather_s: float = 0.02,
    ) -> None:
        self.model, self.tokenizer, self.max_batch = model, tokenizer, max(1, max_batch)
        self.gather_s = gather_s if self.max_batch > 1 else 0.0
        self.end_ids = end_of_turn_ids(model, tokenizer)
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.batches = 0
        self.rows = 0
        self.cancelled = 0  # requests stopped early because their client went away
        self.threads = [
            threading.Thread(target=self._work, name=f"qslm-batch-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Job) -> Future:
        """Queue ``job``; its ``result`` future gets a :class:`Finished`."""
        self.queue.put(job)
        return job.result

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)

    def _take(self) -> list[Job] | None:
        first = self.queue.get()
        if first is None:
            return None
        batch = [first]
        # Wait a moment for more: clients whose answers came in the last batch send their next
        # requests within milliseconds, and without this window a lone early request would be
        # decoded alone while they wait for it, cohort after cohort.
        deadline = time.monotonic() + self.gather_s
        while len(batch) < self.max_batch:
            try:
                job = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:  # closing: let this batch finish, then stop
                self.queue.put(None)
                break
            batch.append(job)
        return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            live = [job for job in batch if not job.cancelled.is_set()]
            for job in batch:
                if job.cancelled.is_set():
                    job.result.set_result(Finished([], "", "cancelled", len(job.prompt_ids)))
            if not live:
                continue
            try:
                self.run(live)
            except Exception as exc:  # a bug or out of memory: fail these requests, keep serving
                for job in live:
                    if not job.result.done():
                        job.result.set_exception(exc)

    def run(self, jobs: list[Job]) -> None:
        """Decode ``jobs`` together in one left-padded ``generate`` call."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        width = max(len(job.prompt_ids) for job in jobs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(jobs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for r, job in enumerate(jobs):
            n = len(job.prompt_ids)
            ids[r, width - n :] = torch.tensor(job.prompt_ids)
            mask[r, width - n :] = 1
        config = GenerationConfig(
            max_new_tokens=max(job.sampling.max_new_tokens for job in jobs),
            do_sample=False,  # sampling, when asked for, happens per row in RowSampling
            eos_token_id=sorted(self.end_ids) or None,
            pad_token_id=pad,
        )
        extra: dict[str, Any] = {}
        if any(job.adapter for job in jobs):
            # PEFT decodes rows with different LoRA adapters of one base in one batch.
            extra["adapter_names"] = [job.adapter or "__base__" for job in jobs]
        needs_sampling = any(not job.sampling.greedy for job in jobs)
        with torch.inference_mode():
            self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([RowSampling(jobs)] if needs_sampling else []),
                stopping_criteria=StoppingCriteriaList(
                    [RowStops(jobs, self.tokenizer, self.end_ids, width)]
                ),
                **extra,
            )
        self.batches += 1
        self.rows += len(jobs)
        for job in jobs:
            reason = job.done or "length"
            self.cancelled += reason == "cancelled"
            text = job.text
            if text is None:
                text = self.tokenizer.decode(job.generated, skip_special_tokens=True)
            job.result.set_result(Finished(job.generated, text, reason, len(job.prompt_ids)))
