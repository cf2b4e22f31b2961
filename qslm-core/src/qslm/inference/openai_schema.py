"""Request bodies of the OpenAI API routes (``/v1/chat/completions``, ``/v1/completions``),
following OpenAI's published schemas, and the fields qslm accepts but does not use.

Unknown fields are refused (400 naming the field). OpenAI fields that do not change what a
plain text model returns (``user``, ``metadata``, penalties of 0, ...) are accepted and
ignored; fields that ask for something qslm does not do (tools, JSON mode, logprobs, ``n`` > 1)
are refused when set, so a client never gets a silently different answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_TOKENS = 2048
MAX_STOP = 4  # OpenAI's own limit on stop sequences

# Accepted only at their "off" value; anything else is refused with 400 naming the field.
OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "response_format": (None, {"type": "text"}),
    "n": (None, 1),
}


def _off_only(value: Any, info: ValidationInfo) -> Any:
    allowed = OFF_VALUES[info.field_name]
    if value not in allowed:
        shown = ", ".join(repr(v) for v in allowed if v is not None)
        raise ValueError(f"{value!r} is not supported by qslm serve (accepted: {shown})")
    return value


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = Field(False, description="Send a last chunk carrying usage.")
    include_obfuscation: bool | None = Field(None, description="Accepted, ignored.")


class Sampling(BaseModel):
    """The fields both routes share."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, description="A model id from GET /v1/models.")
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="Most new tokens.")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="1 if absent; below 0.01 (0 included) is greedy."
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus mass; 1 = off.")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Fixes the draw.")
    stop: str | list[str] | None = Field(None, description=f"Up to {MAX_STOP} stop strings.")
    stream: bool | None = Field(False, description="Server-sent events, ending with [DONE].")
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=1, description="Only 1.")
    frequency_penalty: float | None = Field(None, description="Only 0.")
    presence_penalty: float | None = Field(None, description="Only 0.")
    logit_bias: dict[str, Any] | None = Field(None, description="Only empty.")
    user: str | None = Field(None, description="Accepted, ignored.")
    metadata: dict[str, Any] | None = Field(None, description="Accepted, ignored.")
    store: bool | None = Field(None, description="Accepted, ignored.")
    service_tier: str | None = Field(None, description="Accepted, ignored.")

    _off = field_validator("frequency_penalty", "presence_penalty", "logit_bias")(_off_only)

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"stop: {len(stops)} strings, over the limit of {MAX_STOP}")
        if any(not s for s in stops):
            raise ValueError("stop: an empty stop string")
        return stops

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text"]
    text: str


class Message(BaseModel):
    """A chat message; ``developer`` is read as ``system``. Tool and function messages are
    refused (qslm serves no tools)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(None, description="Accepted, ignored.")

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(Sampling):
    """The body of ``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    logprobs: bool | None = Field(None, description="Only false.")
    top_logprobs: int | None = Field(None, description="Only 0.")
    tools: list[Any] | None = Field(None, description="Only empty: no tool calls.")
    tool_choice: Any = Field(None, description="Only 'none' or 'auto'.")
    functions: list[Any] | None = Field(None, description="Only empty.")
    function_call: Any = Field(None, description="Only 'none' or 'auto'.")
    response_format: dict[str, Any] | None = Field(None, description="Only {'type': 'text'}.")
    parallel_tool_calls: bool | None = Field(None, description="Accepted, ignored.")

    _off_chat = field_validator(
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "response_format",
    )(_off_only)

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def turns(self) -> list[dict[str, str]]:
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


class CompletionRequest(Sampling):
    """The body of ``POST /v1/completions`` (the legacy text completions)."""

    prompt: str | list[str] = Field(description="A prompt, or a list of prompts (one choice each).")
    echo: bool | None = Field(False, description="Put the prompt before the completion.")
    best_of: int | None = Field(None, ge=1, le=1, description="Only 1.")
    logprobs: int | None = Field(None, ge=0, le=0, description="Only 0 or absent.")
    suffix: None = Field(None, description="Not supported.")

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts:
            raise ValueError("prompt: an empty list")
        if len(prompts) > 16:
            raise ValueError(f"prompt: {len(prompts)} prompts, over the limit of 16")
        return prompts

    def limit(self) -> int | None:
        return self.max_tokens


# Responses, for the OpenAPI schema the app publishes (and Schemathesis checks answers against).


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error object."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in [
        (400, "A bad field, named in param."),
        (401, "Missing or wrong API key."),
        (404, "Unknown model."),
        (408, "The body did not arrive in time."),
        (413, "Body over the limit."),
        (429, "All slots busy; see Retry-After."),
    ]
}


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None
    finish_reason: Literal["stop", "length"]


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
