"""Installing an attention backend into Hugging Face transformers.

A backend's function is registered in ``transformers.AttentionInterface`` under a name of its
own, which is then passed as ``attn_implementation`` when a model is built. transformers 5 only
builds attention masks for implementations it knows in ``AttentionMaskInterface``, so the name
is registered there too, with the mask builder the backend asks for:

- ``"sdpa"``: a boolean mask (True = attend), or ``None`` for a plain causal batch, in which
  case the function must apply causality itself (``module.is_causal``);
- ``"eager"`` (the default for backends that do not say): an additive float mask, always
  materialised, 0 where attending and a large negative number elsewhere.

A backend chooses by setting the class attribute ``mask_interface``.

The registration is process-wide and does not reach the saved model: ``config.json`` does not
record the implementation, so a saved model loads without qslm (with transformers' default).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qslm.components import AttentionBackend

MASK_INTERFACES = ("sdpa", "eager")


def implementation_name(backend: AttentionBackend, name_prefix: str = "qslm_") -> str:
    """The ``attn_implementation`` name of a backend: its class name in snake case, plus a
    short hash of its options when it has any, so two configurations never share a name."""
    cls_name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(backend).__name__).lower()
    # transformers treats names containing these words (or a "/", a hub kernel) specially.
    for word in ("sdpa", "flash", "flex", "paged"):
        cls_name = cls_name.replace(word, word[0] + "_" + word[1:])
    options = backend.options.model_dump(mode="json")
    if not options:
        return f"{name_prefix}{cls_name}"
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
    return f"{name_prefix}{cls_name}_{digest}"


def install(backend: AttentionBackend, name_prefix: str = "qslm_") -> str:
    """Register the backend's attention function (and its mask builder) with transformers.

    Returns the name to pass as ``attn_implementation``. Installing twice is harmless.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    mask_kind = backend.mask_interface
    if mask_kind not in MASK_INTERFACES:
        raise ValueError(
            f"{type(backend).__name__}.mask_interface must be one of {MASK_INTERFACES}, "
            f"not {mask_kind!r}"
        )
    name = implementation_name(backend, name_prefix)
    AttentionInterface.register(name, backend.function())
    AttentionMaskInterface.register(name, AttentionMaskInterface._global_mapping[mask_kind])
    return name


def attend_function(backend: Any) -> Callable[..., Any]:
    """The Hugging Face attention function of a backend that has ``attend(query, key, value,
    mask, *, scaling, causal, dropout, training) -> (out (b, heads, seq, d), weights)``."""

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        out, weights = backend.attend(
            query,
            key,
            value,
            attention_mask,
            scaling=scaling,
            causal=bool(getattr(module, "is_causal", False)),
            dropout=dropout,
            training=bool(getattr(module, "training", False)),
        )
        return out.transpose(1, 2).contiguous(), weights

    attention.__name__ = f"{type(backend).__name__}_attention"
    return attention
