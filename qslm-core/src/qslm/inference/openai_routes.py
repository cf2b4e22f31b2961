"""The OpenAI API of ``qslm serve``: ``GET /v1/models``, ``POST /v1/chat/completions`` and
``POST /v1/completions``, answered or streamed (server-sent events in OpenAI's chunk format,
ending with ``data: [DONE]``), with OpenAI's error object on every failure."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from qslm.errors import QslmError
from qslm.inference.batching import Finished, Job, Sampling
from qslm.inference.openai_schema import (
    ERROR_RESPONSES,
    ChatCompletion,
    ChatRequest,
    Completion,
    CompletionRequest,
    ModelList,
)
from qslm.inference.openai_schema import Sampling as SamplingFields
from qslm.inference.served import ServedBuild

DEFAULT_MAX_TOKENS = 256


class ApiError(Exception):
    """An answer in OpenAI's error format: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type, self.headers = type, headers or {}

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


def chat_prompt_for(build: ServedBuild, turns: list[dict[str, str]]) -> tuple[str, list[str]]:
    """The prompt of a conversation for ``build`` and the strings that end its turn: the
    template its ``lora`` trainer tuned on (recorded in the manifest), else the tokenizer's chat
    template, else the plain ``User:/Assistant:`` transcript of ``qslm chat``."""
    from qslm.data.formatting import generation_prompt
    from qslm.inference.chat import chat_prompt

    if build.template not in (None, "plain"):  # a plain-text tune has no prompt format
        try:
            return generation_prompt({"messages": turns}, build.template, build.tokenizer), []
        except QslmError as exc:
            raise ApiError(400, f"messages: {exc}", param="messages") from None
    prompt, stops = chat_prompt(build.tokenizer, turns)
    return prompt, list(stops or [])


@dataclass
class Slots:
    """The server-wide bound on generations at once: beyond it, 429 at once (never queued)."""

    limit: int
    active: int = 0
    retry_after_s: int = 1

    def take(self, n: int, metrics: Any) -> None:
        # No await between the check and the increment: atomic on the event loop.
        if self.active + n > self.limit:
            metrics.rejected.inc()
            raise ApiError(
                429,
                f"busy: {self.active} of {self.limit} generations running (--max-concurrency); "
                f"retry after {self.retry_after_s} s",
                type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.active += n
        metrics.in_progress.inc(n)

    def give(self, n: int, metrics: Any) -> None:
        self.active -= n
        metrics.in_progress.dec(n)


def _sampling(body: SamplingFields, limit: int) -> Sampling:
    temperature = 1.0 if body.temperature is None else body.temperature
    top_p = 1.0 if body.top_p is None else body.top_p
    return Sampling(max_new_tokens=limit, temperature=temperature, top_p=top_p, seed=body.seed)


def _prepare(build: ServedBuild, prompt: str, body: Any, param: str, max_chars: int) -> Job:
    """A job for ``prompt``, after the checks that need the tokenizer: prompt and
    ``max_tokens`` within the model's context."""
    if len(prompt) > max_chars:
        raise ApiError(
            400,
            f"{param}: {len(prompt)} characters, over the limit of {max_chars} "
            "(--max-prompt-chars)",
            param=param,
            code="context_length_exceeded",
        )
    try:
        stops = body.stops()
    except ValueError as exc:
        raise ApiError(400, str(exc), param="stop") from None
    ids = build.tokenizer(prompt)["input_ids"]
    context = build.context_length or (len(ids) + (body.limit() or DEFAULT_MAX_TOKENS))
    room = context - len(ids)
    if room < 1:
        raise ApiError(
            400,
            f"{param}: {len(ids)} tokens, the model's context is {context}",
            param=param,
            code="context_length_exceeded",
        )
    limit = body.limit() or min(DEFAULT_MAX_TOKENS, room)
    if limit > room:
        which = "max_completion_tokens" if getattr(body, "max_completion_tokens", None) else None
        raise ApiError(
            400,
            f"{which or 'max_tokens'}: the prompt ({len(ids)} tokens) plus {limit} new tokens "
            f"exceeds the model's context of {context} tokens",
            param=which or "max_tokens",
            code="context_length_exceeded",
        )
    return Job(ids, _sampling(body, limit), stop=stops, adapter=build.adapter)


def _hold_back(text: str, stops: list[str]) -> int:
    """How much of ``text`` may be streamed now: not a trailing partial UTF-8 character, not
    a tail that could be the start of a stop string."""
    end = len(text)
    while end and text[end - 1] == "\ufffd":
        end -= 1
    for stop in stops:
        for k in range(min(len(stop) - 1, end), 0, -1):
            if text[:end].endswith(stop[:k]):
                end = min(end, len(text[:end]) - k)
                break
    return end


async def _events(
    jobs: list[Job], build: ServedBuild, loop: asyncio.AbstractEventLoop
) -> AsyncIterator[tuple[int, str, Finished | None]]:
    """``(index, new text, Finished or None)`` as the jobs' tokens arrive."""
    events: asyncio.Queue[tuple[int, int | Finished]] = asyncio.Queue()
    for i, job in enumerate(jobs):
        job.on_token = lambda t, i=i: loop.call_soon_threadsafe(events.put_nowait, (i, t))
        job.result.add_done_callback(
            lambda f, i=i: loop.call_soon_threadsafe(events.put_nowait, (i, f))
        )
        build.group.batcher.submit(job)
    tokens: list[list[int]] = [[] for _ in jobs]
    sent = [0] * len(jobs)
    pending = len(jobs)
    while pending:
        i, item = await events.get()
        if isinstance(item, int):
            tokens[i].append(item)
            text = build.tokenizer.decode(tokens[i], skip_special_tokens=True)
            end = _hold_back(text, jobs[i].stop)
            if end > sent[i]:
                yield i, text[sent[i] : end], None
                sent[i] = end
            continue
        pending -= 1
        finished = item.result()  # a failed generation raises here
        tail = finished.text[sent[i] :] if len(finished.text) > sent[i] else ""
        yield i, tail, finished


def _usage(finished: list[Finished]) -> dict[str, int]:
    prompt = sum(f.prompt_tokens for f in finished)
    completion = sum(len(f.token_ids) for f in finished)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _reason(finished: Finished) -> str:
    return "length" if finished.finish_reason == "length" else "stop"


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


class Routes:
    """The OpenAI routes over the server's builds, slots and metrics."""

    def __init__(self, served: Any, slots: Slots, metrics: Any, max_prompt_chars: int) -> None:
        self.served, self.slots, self.metrics = served, slots, metrics
        self.max_prompt_chars = max_prompt_chars
        self.router = APIRouter()
        route = self.router.add_api_route
        errors = ERROR_RESPONSES
        route(
            "/v1/models", self.models, methods=["GET"], response_model=ModelList, responses=errors
        )
        for path, endpoint, model in [
            ("/v1/chat/completions", self.chat, ChatCompletion),
            ("/v1/completions", self.completions, Completion),
        ]:
            route(path, endpoint, methods=["POST"], response_model=model, responses=errors)

    async def models(self) -> dict[str, Any]:
        """The builds served, one entry per model id and alias."""
        data = [
            {"id": name, "object": "model", "created": b.created, "owned_by": "qslm"}
            for b in self.served.builds
            for name in [b.id, *b.aliases]
            if self.served.get(name) is b
        ]
        return {"object": "list", "data": data}

    async def _build(self, model: str) -> ServedBuild:
        build = self.served.get(model)
        if build is None:
            names = sorted(self.served.by_id)
            raise ApiError(
                404,
                f"model {model!r} is not served here; served: {', '.join(names)}",
                param="model",
                code="model_not_found",
            )
        if not build.loaded:
            await asyncio.to_thread(self.served.ensure_loaded, build)
        return build

    async def chat(self, body: ChatRequest, request: Request) -> Any:
        """OpenAI chat completions: the conversation rendered with the build's template."""
        build = await self._build(body.model)
        prompt, template_stops = chat_prompt_for(build, body.turns())
        job = _prepare(build, prompt, body, "messages", self.max_prompt_chars)
        job.stop = [*job.stop, *template_stops]
        return await self._run(build, [job], body, request, chat=True)

    async def completions(self, body: CompletionRequest, request: Request) -> Any:
        """OpenAI (legacy) text completions: one choice per prompt."""
        build = await self._build(body.model)
        try:
            prompts = body.prompts()
        except ValueError as exc:
            raise ApiError(400, str(exc), param="prompt") from None
        jobs = [_prepare(build, p, body, "prompt", self.max_prompt_chars) for p in prompts]
        echo = prompts if body.echo else None
        return await self._run(build, jobs, body, request, chat=False, echo=echo)

    async def _run(
        self,
        build: ServedBuild,
        jobs: list[Job],
        body: Any,
        request: Request,
        *,
        chat: bool,
        echo: list[str] | None = None,
    ) -> Any:
        self.slots.take(len(jobs), self.metrics)
        head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": body.model,
        }
        started = time.perf_counter()
        events = _events(jobs, build, asyncio.get_running_loop())
        release = self._releaser(jobs)
        if body.stream:
            stream = self._stream(events, head, body.include_usage, chat, echo, started, release)
            return _Stream(stream, release)
        try:
            finished = await self._collect(events, jobs, request)
        finally:
            release()
        if finished is None:  # the client went away
            return JSONResponse({}, status_code=499)
        self._observe(finished, started, chat)
        return self._answer(head, finished, chat, echo)

    async def _collect(self, events: Any, jobs: list[Job], request: Request) -> list | None:
        finished: list[Finished | None] = [None] * len(jobs)
        watch = asyncio.ensure_future(_until_disconnected(request))
        try:
            async for i, _, done in events:
                if done is not None:
                    finished[i] = done
                if watch.done():
                    for job in jobs:
                        job.cancelled.set()
        finally:
            watch.cancel()
        if any(f is None or f.finish_reason == "cancelled" for f in finished):
            return None
        return finished

    def _releaser(self, jobs: list[Job]) -> Any:
        """A function that stops the jobs still decoding and frees their slots, once."""
        released = []

        def release() -> None:
            if not released:
                released.append(True)
                for job in jobs:
                    job.cancelled.set()  # no-op for finished jobs
                self.slots.give(len(jobs), self.metrics)

        return release

    def _observe(self, finished: list[Finished], started: float, chat: bool) -> None:
        self.metrics.tokens.inc(sum(len(f.token_ids) for f in finished))
        route = "/v1/chat/completions" if chat else "/v1/completions"
        self.metrics.openai_latency.labels(route).observe(time.perf_counter() - started)

    @staticmethod
    def _answer(
        head: dict[str, Any], finished: list[Finished], chat: bool, echo: list[str] | None
    ) -> dict[str, Any]:
        if chat:
            choices = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": finished[0].text},
                    "logprobs": None,
                    "finish_reason": _reason(finished[0]),
                }
            ]
        else:
            choices = [
                {
                    "index": i,
                    "text": (echo[i] if echo else "") + f.text,
                    "logprobs": None,
                    "finish_reason": _reason(f),
                }
                for i, f in enumerate(finished)
            ]
        kind = "chat.completion" if chat else "text_completion"
        return {**head, "object": kind, "choices": choices, "usage": _usage(finished)}

    async def _stream(
        self,
        events: Any,
        head: dict[str, Any],
        include_usage: bool,
        chat: bool,
        echo: list[str] | None,
        started: float,
        release: Any,
    ) -> AsyncIterator[bytes]:
        kind = "chat.completion.chunk" if chat else "text_completion"
        extra = {"usage": None} if include_usage else {}

        def chunk(i: int, text: str | None, reason: str | None, role: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {"role": "assistant"} if role else {}
                if text is not None:
                    delta["content"] = text
                choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}
            else:
                choice = {"index": i, "text": text or "", "logprobs": None, "finish_reason": reason}
            return _sse({**head, "object": kind, "choices": [choice], **extra})

        finished: list[Finished] = []
        try:
            if chat:
                yield chunk(0, "", None, role=True)
            for i, prompt in enumerate(echo or []):
                yield chunk(i, prompt, None)
            async for i, text, done in events:
                if text:
                    yield chunk(i, text, None)
                if done is not None:
                    finished.append(done)
                    yield chunk(i, None if chat else "", _reason(done))
            self._observe(finished, started, chat)
            if include_usage:
                yield _sse({**head, "object": kind, "choices": [], "usage": _usage(finished)})
            yield _sse("[DONE]")
        finally:
            # Runs when the stream ends and when the client goes away (the response is
            # cancelled): the generation stops at its next token and the slot is free.
            release()


class _Stream(StreamingResponse):
    """An event stream that frees its slots however the response ends, even when the client
    went away before the first chunk (then the stream's generator never runs)."""

    def __init__(self, content: AsyncIterator[bytes], release: Any) -> None:
        super().__init__(content, media_type="text/event-stream")
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def _until_disconnected(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.1)
