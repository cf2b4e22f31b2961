"""Hub models on first use, against a stand-in for the Hugging Face Hub on 127.0.0.1: a Hub
name in ``base_model`` downloads through huggingface_hub (the token sent as a Bearer header and
never written anywhere), the commit lands in the manifest, a revision pin picks its commit,
``--offline`` uses the cache only, and the Hub's refusals (gated, unknown repo or revision)
are one clear message each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import synthetic_texts
from hub_standin import Repo, StandInHub, commit_id, folder_files, serve
from test_train_lora import TINY_LLAMA, pipeline_toml

pytest.importorskip("torch")
TOKEN = "hf_standInSecret0123456789"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The stand-in serving a tiny Llama as ``acme/tiny`` (main and a ``v1`` tag on another
    commit), the same model gated as ``acme/gated``; pickled and original weights beside the
    safetensors, which a download must skip."""
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    from qslm.train.scratch import train_tokenizer

    folder = tmp_path_factory.mktemp("hub-model")
    tokenizer = train_tokenizer(synthetic_texts(300, 0), 300, 2, 64)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos,
                         pad_token_id=eos, **TINY_LLAMA)  # fmt: skip
    transformers.set_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    main = {**folder_files(folder), "pytorch_model.bin": b"pickle", "original/params.pth": b"x"}
    v1 = {**main, "README.md": b"# tiny, v1\n"}
    commits = {commit_id(main): main, commit_id(v1): v1}
    state = StandInHub(token=TOKEN)
    refs = {"main": commit_id(main), "v1": commit_id(v1)}
    state.add("acme/tiny", Repo("model", refs, commits))
    state.add("acme/gated", Repo("model", refs, commits, gated=True))
    rows = [{"question": f"What is {i} + 1?", "answer": f"{i + 1}"} for i in range(20)]
    data = {"data/train.jsonl": "\n".join(json.dumps(r) for r in rows).encode()}
    state.add("acme/qa", Repo("dataset", {"main": commit_id(data)}, {commit_id(data): data}))
    server, _ = serve(state)
    yield state
    server.shutdown()


def _env(hub: StandInHub, cache: Path, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QSLM_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent / "hf"))
    if token:
        env["HF_TOKEN"] = token
    return env


def _qslm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # huggingface_hub reads HF_ENDPOINT at import: each run is a fresh process
    code = "from qslm.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _pipeline(tmp_path: Path, base: str, **options) -> Path:
    (tmp_path / "corpus.txt").write_text("\n\n".join(synthetic_texts(120, 0)))
    path = tmp_path / "pipeline.toml"
    path.write_text(pipeline_toml(base, **{"max_steps": 4, **options}))  # type: ignore[arg-type]
    return path


def test_hub_model_downloads_on_first_use_and_the_build_names_its_commit(hub, tmp_path):
    cache = tmp_path / "cache"
    pipeline = _pipeline(tmp_path, "acme/tiny")
    seen = len(hub.requests)
    run = _qslm(["run", str(pipeline), "-o", str(tmp_path / "builds")], _env(hub, cache))
    assert run.returncode == 0, run.stderr[-3000:]
    build = Path(run.stdout.strip().splitlines()[-1])
    manifest = json.loads((build / "manifest.json").read_text())
    commit = hub.repos[("model", "acme/tiny")].refs["main"]
    assert manifest["lora"]["base_hub"] == {"repo": "acme/tiny", "revision": "main",
                                            "commit": commit}  # fmt: skip
    assert "downloading acme/tiny" in run.stderr and "Fetching" in run.stderr  # progress
    snapshot = cache / "models--acme--tiny" / "snapshots" / commit
    assert (snapshot / "model.safetensors").is_file()
    assert manifest["artifact"]["base_model"] == str(snapshot)  # evaluators load these weights
    assert "perplexity" in manifest["metrics"]
    fetched = {path for method, path, _ in hub.requests[seen:] if method == "GET"}
    assert not any(p.endswith(("pytorch_model.bin", "params.pth")) for p in fetched)
    # the token reached the Hub, and nothing qslm wrote or printed
    assert {auth for _, p, auth in hub.requests[seen:] if "acme/" in p} == {f"Bearer {TOKEN}"}
    for f in build.rglob("*"):
        assert not f.is_file() or TOKEN.encode() not in f.read_bytes(), f
    assert TOKEN not in run.stdout + run.stderr

    # the same pipeline offline: from the cache, no request to the Hub
    seen = len(hub.requests)
    offline = _qslm(["validate", "--offline", str(pipeline)], _env(hub, cache))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert f"commit {commit[:12]}, cached" in offline.stdout
    assert len(hub.requests) == seen


def test_revision_pin_and_the_hubs_refusals_at_preflight(hub, tmp_path):
    """Each case is one `qslm validate` (pre-flight asks the Hub; nothing is downloaded), all
    in one process: huggingface_hub reads HF_TOKEN at each request, HF_ENDPOINT at import.
    A pin resolves to its commit; each refusal is one clear message (exit 2)."""
    v1 = hub.repos[("model", "acme/tiny")].refs["v1"]
    cases = {
        "revision-pin": ("acme/tiny", {"revision": "v1"}, TOKEN,
                         f"acme/tiny (hub, commit {v1[:12]}, downloads on first use)"),
        "gated-with-token": ("acme/gated", {}, TOKEN, "acme/gated (hub"),  # the token opens it
        "gated-no-token": ("acme/gated", {}, None, "is gated (no HF_TOKEN is set)"),
        "unknown-repo": ("acme/nothing", {}, TOKEN, "the Hub has no model 'acme/nothing'"),
        "unknown-revision": ("acme/tiny", {"revision": "v9"}, TOKEN, "has no revision 'v9'"),
        "offline-option": ("acme/tiny", {"offline": True}, TOKEN, "offline is true"),
    }  # fmt: skip
    succeed = {"revision-pin", "gated-with-token"}
    runs = {}
    for case, (name, options, token, _) in cases.items():
        (tmp_path / case).mkdir()
        runs[case] = (str(_pipeline(tmp_path / case, name, **options)), token)
    code = textwrap.dedent(f"""
        import json
        from click.testing import CliRunner
        from qslm.cli import cli
        out = {{}}
        for case, (pipeline, token) in {runs!r}.items():
            r = CliRunner().invoke(cli, ["validate", pipeline], env={{"HF_TOKEN": token}})
            out[case] = [r.exit_code, r.output]
        print(json.dumps(out))
    """)
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(hub, cache, None),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for case, (_, _, _, expected) in cases.items():
        code_, out = results[case]
        assert "Traceback" not in out and TOKEN not in out and expected in out, (case, out)
        if case in succeed:
            assert code_ == 0, (case, out)
        else:
            assert code_ == 2 and "train.options." in out, (case, out)
    assert not (cache / "models--acme--gated" / "blobs").exists()  # validate downloads nothing


def test_offline_run_flag_refuses_an_uncached_hub_model(hub, tmp_path):
    pipeline = _pipeline(tmp_path, "acme/tiny")
    env = _env(hub, tmp_path / "empty-cache")
    seen = len(hub.requests)
    result = _qslm(["run", "--offline", str(pipeline), "-o", str(tmp_path / "b")], env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'acme/tiny' is not available offline" in result.stderr
    assert "qslm run --offline" in result.stderr and "Traceback" not in result.stderr
    assert len(hub.requests) == seen and not list((tmp_path / "b").glob("lora/v*"))


def test_hub_dataset_loads_through_the_hf_source_with_its_commit(hub, tmp_path):
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from qslm.context import RunContext
        from qslm.data.hf import HfOptions, HfSource
        source = HfSource(HfOptions(path="acme/qa", columns={{"instruction": "question",
                          "output": "answer"}}), base_dir=Path({str(tmp_path)!r}))
        print(json.dumps(source.plan()))
        ctx = RunContext(config=None, registry=None, build_dir=Path({str(tmp_path)!r}), seed=0)
        data = source.load(ctx)
        print(json.dumps({{"records": len(data.train) + len(data.validation), **data.info}}))
    """)
    env = _env(hub, tmp_path / "cache")
    seen = len(hub.requests)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    plan, info = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    commit = hub.repos[("dataset", "acme/qa")].refs["main"]
    assert f"commit {commit[:12]}" in plan[0]
    assert info["records"] == 20 and info["hub"]["commit"] == commit
    downloads = [p for m, p, _ in hub.requests[seen:] if m == "GET" and "/resolve/" in p]
    assert any(p.endswith(f"{commit}/data/train.jsonl") for p in downloads)  # at that commit
    assert TOKEN not in result.stdout + result.stderr


def test_scrub_removes_the_token_from_library_messages(monkeypatch):
    from qslm.hub import scrub

    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue")
    assert scrub("401 for Bearer hf_secretvalue at /api") == "401 for Bearer *** at /api"
