"""A stand-in for the Hugging Face Hub on 127.0.0.1, for huggingface_hub pointed at it with
``HF_ENDPOINT``.

It answers the calls huggingface_hub makes to find and download a repo (read from its source,
``hf_api.py``, ``file_download.py`` and ``_snapshot_download.py``): repo info
(``/api/{models,datasets}/{repo}[/revision/{rev}]``), the tree listing
(``/api/.../tree/{rev}[/{path}]``), paths-info, and ``HEAD``/``GET`` on
``[/datasets]/{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag`` and
``Content-Length``. Failures are the Hub's too: 401 ``RepoNotFound`` for an unknown repo asked
without a token (404 with one), 401 ``GatedRepo`` for a gated repo's files without a token,
404 ``RevisionNotFound`` and ``EntryNotFound``. It records every request and its
``Authorization`` header, so a test can check what reached the "Hub".
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Repo:
    """One repo: its branches/tags (name -> commit) and each commit's files (path -> bytes)."""

    repo_type: str  # "model" or "dataset"
    refs: dict[str, str]
    commits: dict[str, dict[str, bytes]]
    gated: bool = False

    def commit_of(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass
class StandInHub:
    """The server's state: repos by (type, name), the token it accepts, the requests seen."""

    token: str
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""

    def add(self, name: str, repo: Repo) -> None:
        self.repos[(repo.repo_type, name)] = repo


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path: what a repo commit holds."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def commit_id(files: dict[str, bytes]) -> str:
    """A 40-hex commit id for a set of files (the Hub's are git's; any 40 hex digits do)."""
    digest = hashlib.sha1()
    for path, data in sorted(files.items()):
        digest.update(path.encode() + b"\0" + data)
    return digest.hexdigest()


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id


def _entry(path: str, data: bytes) -> dict:
    entry = {"type": "file", "path": path, "size": len(data), "oid": _oid(data)}
    if path.endswith((".safetensors", ".bin")):  # the Hub stores weights in LFS
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "pointerSize": 134}  # fmt: skip
    return entry


class _Handler(BaseHTTPRequestHandler):
    hub: StandInHub  # set on the subclass made per server

    def log_message(self, *args) -> None:  # quiet: the test reads hub.requests
        pass

    # -- answers ------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, headers: dict | None = None) -> None:
        self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json",
                                                       **(headers or {})})  # fmt: skip

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message,
                                  "Content-Type": "application/json"})  # fmt: skip

    def _authorized(self) -> bool | None:
        """True with the right token, False with a wrong one, None with none."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        return header == f"Bearer {self.hub.token}"

    def _repo(self, repo_type: str, name: str) -> Repo | None:
        repo = self.hub.repos.get((repo_type, name))
        if repo is None:
            auth = self._authorized()
            if auth is None:  # the Hub does not say whether a private repo exists
                self._error(401, "RepoNotFound", "Repository not found")
            else:
                self._error(404, "RepoNotFound", "Repository not found")
        return repo

    def _commit(self, repo: Repo, revision: str) -> str | None:
        commit = repo.commit_of(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    # -- routes -------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        self.hub.requests.append((self.command, path, self.headers.get("Authorization")))
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets"):
            return self._api(parts[1][:-1], parts[2:], parse_qs(url.query))
        repo_type = "model"
        if parts[0] == "datasets":
            repo_type, parts = "dataset", parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(repo_type, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        self._error(404, "EntryNotFound", f"no route for {path}")

    def _api(self, repo_type: str, rest: list[str], query: dict) -> None:
        name, rest = "/".join(rest[:2]), rest[2:]
        repo = self._repo(repo_type, name)
        if repo is None:
            return
        action = rest[0] if rest else "revision"
        revision = rest[1] if len(rest) > 1 else "main"
        commit = self._commit(repo, revision)
        if commit is None:
            return
        files = repo.commits[commit]
        if action == "revision":
            siblings = [{"rfilename": p} for p in files]
            return self._json({"id": name, "sha": commit, "private": False,
                               "gated": "manual" if repo.gated else False,
                               "siblings": siblings})  # fmt: skip
        if action == "tree":
            return self._json(self._tree(files, "/".join(rest[2:]), query))
        if action == "paths-info":
            length = int(self.headers.get("Content-Length") or 0)
            asked = parse_qs(self.rfile.read(length).decode()).get("paths", [])
            return self._json(self._paths_info(files, asked))
        self._error(404, "EntryNotFound", f"unknown API {action}")

    def _tree(self, files: dict[str, bytes], under: str, query: dict) -> list[dict]:
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        prefix = f"{under}/" if under else ""
        out: dict[str, dict] = {}
        for path, data in files.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if recursive or "/" not in rest:
                out[path] = _entry(path, data)
            folder = prefix + rest.split("/")[0]
            if "/" in rest and folder not in out:
                out[folder] = {"type": "directory", "path": folder, "oid": _oid(folder.encode())}
            if recursive:  # every folder on the way down is listed too
                bits = rest.split("/")[:-1]
                for i in range(1, len(bits) + 1):
                    sub = prefix + "/".join(bits[:i])
                    out.setdefault(sub, {"type": "directory", "path": sub, "oid": _oid(b"d")})
        return list(out.values())

    def _paths_info(self, files: dict[str, bytes], asked: list[str]) -> list[dict]:
        out = []
        for p in asked:
            if p in files:
                out.append(_entry(p, files[p]))
            elif any(f.startswith(p.rstrip("/") + "/") for f in files) or p in ("", "."):
                out.append({"type": "directory", "path": p, "oid": _oid(p.encode())})
        return out

    def _resolve(self, repo_type: str, name: str, revision: str, file: str) -> None:
        repo = self._repo(repo_type, name)
        if repo is None:
            return
        if repo.gated and not self._authorized():
            message = f"Access to model {name} is restricted. You must be authenticated."
            return self._error(401, "GatedRepo", message)
        commit = self._commit(repo, revision)
        if commit is None:
            return
        data = repo.commits[commit].get(file)
        if data is None:
            return self._error(404, "EntryNotFound", f"{file} does not exist on {revision}")
        entry = _entry(file, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.command == "GET":
            start, _, end = rng[6:].partition("-")
            first, last = int(start or 0), int(end) if end else len(data) - 1
            chunk = data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{first + len(chunk) - 1}/{len(data)}"
            return self._send(206, chunk, headers)
        self._send(200, data, headers)


def serve(hub: StandInHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the stand-in on a free port of 127.0.0.1; ``hub.url`` is its endpoint."""
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
