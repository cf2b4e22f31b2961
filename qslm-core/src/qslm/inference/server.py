"""The HTTP API of ``qslm serve``: FastAPI app with validation, an optional API key, a bound on
concurrent generations, an LRU cache of deterministic requests and Prometheus metrics.

Imports FastAPI and prometheus-client at module level: only ``qslm serve`` (and tests) import
this module, never ``qslm --help``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
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

from qslm.inference.generation import GenerationParams, generate, prompt_length
from qslm.inference.load import LoadedBuild

log = logging.getLogger("qslm.serve")

PROTECTED = ("/v1/generate", "/metrics")  # /health stays open for load balancers' probes
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_NEW_TOKENS = 2048


@dataclass(frozen=True)
class ServeSettings:
    """Limits of one server. ``cache_size=0`` turns the cache off."""

    max_concurrency: int = 2
    cache_size: int = 256
    max_prompt_chars: int = 4000
    api_key: str | None = None


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


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field (allowed: " + ", ".join(GenerateRequest.model_fields) + ")"
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def _authorized(request: Request, key: str) -> bool:
    supplied = request.headers.get("x-api-key")
    if supplied is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        supplied = token.strip() if scheme.lower() == "bearer" else None
    if supplied is None:
        return False
    return hmac.compare_digest(supplied.encode(), key.encode())


def create_app(build: LoadedBuild, settings: ServeSettings) -> FastAPI:
    """The FastAPI app serving ``build`` under ``settings``."""
    metrics = _Metrics()
    executor = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="qslm-generate")
    cache: OrderedDict[tuple, tuple[str, int]] = OrderedDict()
    state = {"active": 0}
    max_body = 4 * settings.max_prompt_chars + 4096  # UTF-8 prompt plus the other fields

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="qslm", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.metrics = metrics

    @app.middleware("http")
    async def count_and_guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        label = path if path in ("/v1/generate", "/metrics", "/health") else "other"
        try:
            if (
                settings.api_key
                and path in PROTECTED
                and not _authorized(request, settings.api_key)
            ):
                response: Response = _error(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer KEY' "
                    "or 'X-API-Key: KEY'",
                )
                response.headers["WWW-Authenticate"] = "Bearer"
            elif int(request.headers.get("content-length") or 0) > max_body:
                response = _error(413, f"request body over {max_body} bytes")
            else:
                response = await call_next(request)
        except Exception:
            metrics.requests.labels(label, "500").inc()
            raise
        metrics.requests.labels(label, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return _error(400, "the body is not valid JSON", errors=errors)
        shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _error(422, f"invalid request: {shown}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "build": build.label,
            "kind": build.manifest.get("artifact", {}).get("kind", "full"),
            "context_length": build.context_length,
            "max_concurrency": settings.max_concurrency,
            "in_progress": state["active"],
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

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
        n_prompt = prompt_length(build.tokenizer, body.prompt)
        limit = build.context_length
        if limit and n_prompt + body.max_new_tokens > limit:
            return _error(
                422,
                f"invalid request: the prompt ({n_prompt} tokens) plus max_new_tokens "
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
        # Check and take a slot with no await in between: the event loop is single-threaded,
        # so this is atomic, and a request beyond the bound is refused at once, never queued.
        if state["active"] >= settings.max_concurrency:
            metrics.rejected.inc()
            return _error(
                429,
                f"busy: {settings.max_concurrency} generations running (--max-concurrency); "
                "retry later",
            )
        state["active"] += 1
        metrics.in_progress.inc()
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                executor, lambda: generate(build.model, build.tokenizer, body.prompt, params)
            )
        finally:
            state["active"] -= 1
            metrics.in_progress.dec()
        metrics.tokens.inc(result.tokens)
        if key is not None and settings.cache_size > 0:
            cache[key] = (result.text, result.tokens)
            while len(cache) > settings.cache_size:
                cache.popitem(last=False)
        return _answer(result.text, result.tokens, started, cached=False)

    def _answer(text: str, tokens: int, started: float, *, cached: bool) -> dict[str, Any]:
        elapsed = time.perf_counter() - started
        metrics.latency.observe(elapsed)
        return {
            "text": text,
            "tokens": tokens,
            "latency_ms": round(elapsed * 1000, 3),
            "cached": cached,
        }

    return app


def torch_threads_for(max_concurrency: int, cpus: int) -> int:
    """Intra-op threads per generation so that concurrent generations share the CPUs rather
    than oversubscribe them (each torch op would otherwise use every core)."""
    return max(1, cpus // max(1, max_concurrency))
