"""The HTTP app of ``qslm serve``: the OpenAI API (:mod:`qslm.inference.openai_routes`), the
original ``POST /v1/generate`` (with its LRU cache of deterministic requests), ``/health`` and
Prometheus ``/metrics``, over one or several builds decoded in batches.

Imports FastAPI and prometheus-client at module level: only ``qslm serve`` (and tests) import
this module, never ``qslm --help``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from qslm.inference.batching import Job, Sampling
from qslm.inference.generation import GenerationParams
from qslm.inference.limits import OPENAI_PATHS, Guard
from qslm.inference.openai_routes import ApiError, Routes, Slots
from qslm.inference.openai_schema import ChatRequest, CompletionRequest
from qslm.inference.served import ServedBuilds

log = logging.getLogger("qslm.serve")

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_NEW_TOKENS = 2048


@dataclass(frozen=True)
class ServeSettings:
    """Limits of one server. ``cache_size=0`` turns the cache off; ``batching=False`` runs one
    ``generate`` per request, ``max_concurrency`` of them side by side."""

    max_concurrency: int = 2
    cache_size: int = 256
    max_prompt_chars: int = 4000
    api_key: str | None = None
    batching: bool = True
    max_batch: int | None = None  # default: max_concurrency
    body_timeout_s: float = 30.0
    retry_after_s: int = 1

    @property
    def max_body(self) -> int:
        return 4 * self.max_prompt_chars + 4096  # UTF-8 prompt plus the other fields

    def batcher_shape(self) -> tuple[int, int]:
        """``(max_batch, workers)`` of each build's batcher."""
        if not self.batching:
            return 1, self.max_concurrency
        return (self.max_batch or self.max_concurrency), 1


class GenerateRequest(BaseModel):
    """The body of ``POST /v1/generate``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, description="The text to continue; not blank.")
    max_new_tokens: int = Field(64, ge=1, le=MAX_NEW_TOKENS, description="Most tokens to generate.")
    temperature: float = Field(0.8, ge=0.0, le=10.0, description="0 means greedy decoding.")
    top_k: int = Field(50, ge=0, le=100_000, description="Keep the k likeliest tokens; 0 = off.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass; 1 = off.")
    seed: int | None = Field(
        None, ge=0, lt=2**63, description="Fixes the draw; a seeded request may be cached."
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is blank")
        return value

    def params(self) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seed=self.seed,
        )


class _Metrics:
    """The server's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "qslm_requests", "HTTP requests by path and status.", ["path", "status"], registry=r
        )
        self.latency = Histogram(
            "qslm_generate_latency_seconds",
            "Latency of successful POST /v1/generate requests, cache hits included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("qslm_generated_tokens", "Tokens generated.", registry=r)
        self.cache_hits = Counter(
            "qslm_cache_hits", "Requests answered from the cache.", registry=r
        )
        self.cache_misses = Counter(
            "qslm_cache_misses", "Cacheable requests that had to be generated.", registry=r
        )
        self.rejected = Counter(
            "qslm_rejected_busy", "Requests refused with 429 (all slots busy).", registry=r
        )
        self.in_progress = Gauge(
            "qslm_generations_in_progress", "Generations running now.", registry=r
        )
        self.openai_latency = Histogram(
            "qslm_openai_latency_seconds",
            "Latency of successful OpenAI API requests (streams: to the last chunk).",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _field_errors(
    exc: RequestValidationError, allowed: Any = GenerateRequest.model_fields
) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field (allowed: " + ", ".join(allowed) + ")"
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def _is_openai(path: str) -> bool:
    return path in OPENAI_PATHS or (path.startswith("/v1/") and path != "/v1/generate")


def render_error(
    path: str, status: int, message: str, code: str | None = None, param: str | None = None
) -> JSONResponse:
    """An error in the format of ``path``: OpenAI's error object on the OpenAI routes, the
    original ``{"error": message}`` elsewhere."""
    if _is_openai(path):
        return ApiError(status, message, param=param, code=code).response()
    return _error(status, message)


def _openai_invalid(path: str, exc: RequestValidationError) -> JSONResponse:
    model = ChatRequest if path == "/v1/chat/completions" else CompletionRequest
    errors = _field_errors(exc, model.model_fields)
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return ApiError(400, "the body is not valid JSON", code="invalid_json").response()
    shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ApiError(400, f"invalid request: {shown}", param=errors[0]["field"]).response()


def _served(source: Any, settings: ServeSettings) -> ServedBuilds:
    if isinstance(source, ServedBuilds):
        return source
    max_batch, workers = settings.batcher_shape()
    return ServedBuilds.of_loaded(source, max_batch=max_batch, workers=workers)


def create_app(source: Any, settings: ServeSettings) -> FastAPI:
    """The app serving ``source`` (:class:`ServedBuilds`, or one loaded build) under
    ``settings``."""
    served = _served(source, settings)
    metrics = _Metrics()
    slots = Slots(settings.max_concurrency, retry_after_s=settings.retry_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        served.close()

    app = FastAPI(title="qslm", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.metrics, app.state.served, app.state.slots = metrics, served, slots
    app.add_middleware(
        Guard,
        api_key=settings.api_key,
        max_body=settings.max_body,
        body_timeout_s=settings.body_timeout_s,
        render=render_error,
        count=lambda label, status: metrics.requests.labels(label, str(status)).inc(),
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _is_openai(request.url.path):
            return _openai_invalid(request.url.path, exc)
        errors = _field_errors(exc)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return _error(400, "the body is not valid JSON", errors=errors)
        shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _error(422, f"invalid request: {shown}", errors=errors)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if _is_openai(request.url.path):
            return exc.response()
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return render_error(request.url.path, exc.status_code, str(exc.detail))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, limits, what runs now and each build's memory."""
        first = served.builds[0]
        return {
            "status": "ok",
            "build": first.id,
            "kind": first.manifest["artifact"].get("kind", "full"),
            "context_length": first.context_length,
            "max_concurrency": settings.max_concurrency,
            "in_progress": slots.active,
            "batching": settings.batching,
            "max_batch": settings.batcher_shape()[0],
            "builds": served.health(),
            "rss_bytes": _rss_bytes(),
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _add_generate_route(app, served, settings, metrics, slots)
    app.include_router(Routes(served, slots, metrics, settings.max_prompt_chars).router)
    return app


def _rss_bytes() -> int | None:
    """Resident memory of this process (Linux), for watching leaks after load."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _add_generate_route(
    app: FastAPI, served: ServedBuilds, settings: ServeSettings, metrics: _Metrics, slots: Slots
) -> None:
    """``POST /v1/generate``, the original route, kept for its clients: it continues a prompt
    with the first build named on the command line."""
    cache: OrderedDict[tuple, tuple[str, int]] = OrderedDict()
    build = served.builds[0]

    @app.post("/v1/generate")
    async def generate_endpoint(body: GenerateRequest) -> Any:
        started = time.perf_counter()
        if len(body.prompt) > settings.max_prompt_chars:
            return _error(
                422,
                f"invalid request: prompt: {len(body.prompt)} characters, over the limit of "
                f"{settings.max_prompt_chars} (--max-prompt-chars)",
                errors=[{"field": "prompt", "message": "too long"}],
            )
        if not build.loaded:
            await asyncio.to_thread(served.ensure_loaded, build)
        ids = build.tokenizer(body.prompt)["input_ids"]
        limit = build.context_length
        if limit and len(ids) + body.max_new_tokens > limit:
            return _error(
                422,
                f"invalid request: the prompt ({len(ids)} tokens) plus max_new_tokens "
                f"({body.max_new_tokens}) exceeds the model's context of {limit} tokens",
                errors=[{"field": "max_new_tokens", "message": "over the context length"}],
            )
        params = body.params()
        key = (body.prompt, *vars(params).values()) if params.deterministic else None
        if key is not None and settings.cache_size > 0:
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
                metrics.cache_hits.inc()
                return _answer(hit[0], hit[1], started, cached=True)
            metrics.cache_misses.inc()
        slots.take(1, metrics)
        job = Job(ids, Sampling(**vars(params)), adapter=build.adapter)
        try:
            result = await asyncio.wrap_future(build.group.batcher.submit(job))
        finally:
            job.cancelled.set()
            slots.give(1, metrics)
        metrics.tokens.inc(len(result.token_ids))
        if key is not None and settings.cache_size > 0:
            cache[key] = (result.text, len(result.token_ids))
            while len(cache) > settings.cache_size:
                cache.popitem(last=False)
        return _answer(result.text, len(result.token_ids), started, cached=False)

    def _answer(text: str, tokens: int, started: float, *, cached: bool) -> dict[str, Any]:
        elapsed = time.perf_counter() - started
        metrics.latency.observe(elapsed)
        return {
            "text": text,
            "tokens": tokens,
            "latency_ms": round(elapsed * 1000, 3),
            "cached": cached,
        }


def torch_threads_for(workers: int, cpus: int) -> int:
    """Intra-op threads per generating thread so that concurrent generations share the CPUs
    rather than oversubscribe them (each torch op would otherwise use every core)."""
    return max(1, cpus // max(1, workers))
