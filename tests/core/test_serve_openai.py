"""``qslm serve``'s OpenAI API driven by the official ``openai`` client (and raw HTTP for the
event stream and the limits) against servers started here on 127.0.0.1, over tiny local builds:
two full builds and two LoRA adapters sharing one base."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from test_serve import KEY, running  # noqa: E402

from qslm.inference.batching import Batcher, Job, Sampling  # noqa: E402
from qslm.inference.generation import GenerationParams, generate  # noqa: E402
from qslm.inference.load import load_build  # noqa: E402
from qslm.inference.served import ServedBuilds, resolve_specs  # noqa: E402
from qslm.inference.server import ServeSettings, create_app  # noqa: E402

PROMPTS = [
    "the cat",
    "a dog sees",
    "the bird follows the old tree",
    "my friend",
    "our neighbour calls a small boat and the teacher",
    "some bread",
    "the river finds",
    "x",
]


def save_adapter(root, name, base_dir, seed):
    """``root/name/v1``: a LoRA adapter build over the model in ``base_dir``, with random
    (non-zero) LoRA weights so that its answers differ from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build = root / name / "v1"
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(build / "adapter")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(build / "adapter")
    manifest = {
        "name": name,
        "version": "v1",
        "artifact": {
            "model_dir": "adapter",
            "tokenizer_dir": "adapter",
            "kind": "adapter",
            "base_model": str(base_dir),
        },
    }
    (build / "manifest.json").write_text(json.dumps(manifest))
    return build


@pytest.fixture(scope="module")
def builds(tiny_model_build, tmp_path_factory):
    """Folders: tiny (full), other (full), lora-a and lora-b (adapters over tiny's model)."""
    from conftest import save_tiny_build

    root = tiny_model_build.parent.parent
    extra = tmp_path_factory.mktemp("more")
    return {
        "tiny": tiny_model_build,
        "other": save_tiny_build(extra, "other"),
        "lora-a": save_adapter(extra, "lora-a", tiny_model_build / "model", 1),
        "lora-b": save_adapter(extra, "lora-b", tiny_model_build / "model", 2),
        "root": root,
    }


@pytest.fixture(scope="module")
def served(builds):
    paths = [builds[k] for k in ("tiny", "other", "lora-a", "lora-b")]
    return ServedBuilds(paths, max_batch=8)


@pytest.fixture(scope="module")
def url(served):
    with running(create_app(served, ServeSettings(max_concurrency=8, api_key=KEY))) as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)


def test_models_lists_every_build_and_alias(client):
    ids = {m.id for m in client.models.list()}
    for name in ("tiny", "other", "lora-a", "lora-b"):
        assert {f"{name}@v1", f"{name}@current", f"{name}@latest", name} <= ids
    model = client.models.retrieve if hasattr(client.models, "retrieve") else None
    assert model is not None
    listed = next(m for m in client.models.list() if m.id == "tiny@v1")
    assert listed.owned_by == "qslm" and listed.created > 0


def test_chat_completion_answers_with_usage_and_finish_reason(client, served):
    out = client.chat.completions.create(
        model="tiny@current",
        messages=[{"role": "user", "content": "the cat"}],
        max_tokens=6,
        temperature=0,
        user="someone",
    )
    choice = out.choices[0]
    assert out.object == "chat.completion" and out.model == "tiny@current"
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    build = served.get("tiny")
    prompt = "User: the cat\nAssistant:"  # the plain transcript of `qslm chat` (no template)
    assert out.usage.prompt_tokens == len(build.tokenizer(prompt)["input_ids"])
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    if choice.finish_reason == "length":
        assert out.usage.completion_tokens == 6


def test_chat_stream_matches_the_answer_and_ends_with_usage(client):
    args = dict(
        model="other",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "a dog"}],
        max_tokens=12,
        temperature=0.9,
        seed=5,
    )
    whole = client.chat.completions.create(**args)
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # seeded: the same draw streamed or not
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_completions_one_choice_per_prompt_with_echo(client, served):
    out = client.completions.create(
        model="tiny@v1", prompt=["the cat", "a dog"], max_tokens=5, temperature=0, echo=True
    )
    build = served.get("tiny")
    assert [c.index for c in out.choices] == [0, 1]
    for choice, prompt in zip(out.choices, ["the cat", "a dog"], strict=True):
        alone = generate(build.model, build.tokenizer, prompt, GenerationParams(5, 0.0))
        assert choice.text == prompt + alone.text
    streamed = client.completions.create(
        model="tiny", prompt="the bird", max_tokens=5, stream=True, seed=3
    )
    pieces = list(streamed)
    again = client.completions.create(model="tiny", prompt="the bird", max_tokens=5, seed=3)
    assert "".join(p.choices[0].text for p in pieces) == again.choices[0].text


def test_lora_builds_share_one_base_and_answer_differently(client, served):
    a, b, base = served.get("lora-a"), served.get("lora-b"), served.get("tiny")
    assert a.model is b.model  # one PeftModel holds both adapters
    answers = {
        name: client.completions.create(model=name, prompt="the cat", max_tokens=8, temperature=0)
        .choices[0]
        .text
        for name in ("lora-a", "lora-b", "tiny")
    }
    assert len(set(answers.values())) == 3, answers
    health = httpx.get(f"{client.base_url}".replace("/v1/", "/health")).json()
    entries = {e["id"]: e for e in health["builds"]}
    shared = entries["lora-a@v1"]["shared_base"]
    assert shared["builds"] == ["lora-a@v1", "lora-b@v1"]
    assert 0 < entries["lora-a@v1"]["weights_bytes"] < shared["weights_bytes"] / 5
    assert shared["weights_bytes"] <= entries["tiny@v1"]["weights_bytes"]
    assert base.model is not a.model


def test_errors_are_openai_errors(url, client):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "tiny@v1" in str(missing.value) and missing.value.body["code"] == "model_not_found"
    with pytest.raises((openai.BadRequestError, openai.UnprocessableEntityError)) as bad:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=0
        )
    assert bad.value.body["param"] == "max_tokens"


def post(url, body, **kwargs):
    headers = {"authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60, **kwargs
    )


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "tiny", "messages": []}, "messages", "at least 1 item"),
        (
            {"model": "tiny", "messages": [{"role": "bot", "content": "x"}]},
            "messages.0.role",
            "'user'",
        ),
        ({"model": "tiny", "messages": "hi"}, "messages", "valid list"),
        ({"messages": HI}, "model", "Field required"),
        ({"model": "tiny", "messages": HI, "max_tokens": -3}, "max_tokens", "greater than"),
        ({"model": "tiny", "messages": HI, "max_tokens": 100000}, "max_tokens", "less than"),
        ({"model": "tiny", "messages": HI, "max_tokens": 2000}, "max_tokens", "context of 256"),
        ({"model": "tiny", "messages": HI, "temperature": "hot"}, "temperature", "valid number"),
        ({"model": "tiny", "messages": HI, "n": 2}, "n", "less than or equal to 1"),
        ({"model": "tiny", "messages": HI, "stop": ["x"] * 100}, "stop", "over the limit of 4"),
        (
            {"model": "tiny", "messages": HI, "tools": [{"type": "function"}]},
            "tools",
            "not supported",
        ),
        (
            {"model": "tiny", "messages": HI, "tempreature": 1},
            "tempreature",
            "unknown field (allowed: model,",
        ),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": "x " * 300}]},
            "messages",
            "tokens",
        ),
    ],
)
def test_bad_fields_get_400_naming_the_field(url, body, param, words):
    r = post(url, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and words in error["message"], error
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b'{"model": "tiny",}'])
def test_malformed_and_non_utf8_bodies_are_400(url, raw):
    r = post(url, None, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and "pars" in error["message"] + "parse"
    assert error["message"] in ("the body is not valid JSON", "There was an error parsing the body")


def test_tiny_temperatures_are_greedy(url, client, served):
    build = served.get("tiny")
    greedy = generate(build.model, build.tokenizer, "the cat", GenerationParams(6, 0.0)).text
    for t in (1e-300, 5e-324, 0.001):
        out = client.completions.create(model="tiny", prompt="the cat", max_tokens=6, temperature=t)
        assert out.choices[0].text == greedy
    r = httpx.post(
        f"{url}/v1/generate",
        json={"prompt": "the cat", "max_new_tokens": 6, "temperature": 1e-300},
        headers={"x-api-key": KEY},
    )
    assert r.status_code == 200 and r.json()["text"] == greedy


def test_raw_http_stream_is_sse_ending_with_done(url):
    body = {"model": "tiny", "messages": HI, "max_tokens": 4, "stream": True}
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_greedy_batched_equals_alone_and_seeded_reproduces(served):
    """The fixed prompt set decoded in one batch of 8 against each prompt alone (the CLI's
    ``generate``): greedy texts must agree on every prompt, seeded draws too."""
    build = served.get("tiny")
    batcher = Batcher(build.model, build.tokenizer, max_batch=8)
    try:
        for sampling in (Sampling(16, 0.0), Sampling(16, 0.9, top_k=50, seed=7)):
            jobs = [Job(build.tokenizer(p)["input_ids"], sampling) for p in PROMPTS]
            batched = [f.result(60).text for f in [batcher.submit(j) for j in jobs]]
            params = GenerationParams(16, sampling.temperature, sampling.top_k, 1.0, sampling.seed)
            alone = [generate(build.model, build.tokenizer, p, params).text for p in PROMPTS]
            agree = sum(a == b for a, b in zip(batched, alone, strict=True))
            assert agree == len(PROMPTS), (sampling, batched, alone)
        assert batcher.batches == 2  # each set really went through as one batch
    finally:
        batcher.close()


def test_disconnect_mid_stream_frees_the_slot(url, served):
    app_health = f"{url}/health"
    batcher = served.get("tiny").group.batcher
    cancelled = batcher.cancelled
    body = {"model": "tiny", "messages": HI, "max_tokens": 230, "stream": True}
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
        data = json.dumps(body).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {KEY}\r\ncontent-length: {len(data)}\r\n\r\n".encode()
            + data
        )
        assert b"200 OK" in sock.recv(4096)
        assert httpx.get(app_health).json()["in_progress"] == 1
    started = time.monotonic()
    while httpx.get(app_health).json()["in_progress"]:
        assert time.monotonic() - started < 5, "the slot was not freed"
        time.sleep(0.05)
    assert batcher.cancelled == cancelled + 1  # its generation stopped, not ran to 230 tokens


def test_64_connections_against_8_slots_then_back_to_idle(served):
    app = create_app(served, ServeSettings(max_concurrency=8, retry_after_s=2))
    body = {"model": "tiny", "prompt": "the cat", "max_tokens": 120, "temperature": 0}
    with running(app) as u:
        idle = httpx.get(f"{u}/health").json()

        async def burst():
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(timeout=60, limits=limits) as c:
                return await asyncio.gather(
                    *[c.post(f"{u}/v1/completions", json=body) for _ in range(64)]
                )

        answers = asyncio.run(burst())
        after = httpx.get(f"{u}/health").json()
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429} and codes.count(200) >= 8 and codes.count(429) >= 1, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    texts = {r.json()["choices"][0]["text"] for r in answers if r.status_code == 200}
    assert len(texts) == 1  # greedy: every admitted request got the same answer
    assert after["in_progress"] == 0 == idle["in_progress"]
    grown = after["rss_bytes"] - idle["rss_bytes"]
    assert grown < 50 * 2**20, f"resident memory grew {grown / 2**20:.0f} MiB after the burst"


def test_serve_resolves_several_build_references(builds, monkeypatch):
    root = builds["root"]
    monkeypatch.chdir(root.parent)
    paths = resolve_specs([f"{root.name}/tiny@current", str(builds["other"])], root)
    assert [p.resolve() for p in paths] == [builds["tiny"].resolve(), builds["other"].resolve()]
    # a builds folder: the current build of each of its pipelines
    assert [p.resolve() for p in resolve_specs([root.name], root)] == [builds["tiny"].resolve()]
    from qslm.errors import ConfigError

    with pytest.raises(ConfigError, match="the same build as"):
        resolve_specs([f"{root.name}/tiny@current", "tiny@v1"], root)
    with pytest.raises(ConfigError, match="no build 'v9'"):
        resolve_specs([f"{root.name}/tiny@v9"], root)


def test_lazy_loading_loads_on_first_request(builds):
    lazy = ServedBuilds([builds["other"]], max_batch=2, eager=False)
    with running(create_app(lazy, ServeSettings())) as u:
        before = httpx.get(f"{u}/health").json()["builds"][0]
        r = httpx.post(
            f"{u}/v1/completions", json={"model": "other", "prompt": "a", "max_tokens": 2}
        )
        after = httpx.get(f"{u}/health").json()["builds"][0]
    assert (before["loaded"], before["weights_bytes"]) == (False, None)
    assert r.status_code == 200 and after["loaded"] and after["weights_bytes"] > 0
    loaded = load_build(builds["other"])
    assert after["context_length"] == loaded.context_length
