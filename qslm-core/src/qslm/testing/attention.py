"""Conformance kit for attention backends: the Hugging Face attention-function signature, the
output's shape and dtype, masked keys ignored (the mask kind the backend declares, and causal
batches without a mask for ``mask_interface = "sdpa"``), grouped-query heads, gradients.

Inherit :class:`AttentionConformance` in a ``Test*`` class and set :attr:`backend`. A
stochastic backend should draw the same samples for the same call: seed a generator per call,
or define ``reseed()``, which the kit calls before each call.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from qslm.components import AttentionBackend
from qslm.testing.kit import Target, make_component

BATCH, HEADS, KV_HEADS, SEQ, DIM = 2, 4, 2, 6, 8


def _module(causal: bool = True, training: bool = False) -> Any:
    import torch

    module = torch.nn.Module()
    module.is_causal = causal
    module.num_key_value_groups = HEADS // KV_HEADS
    module.train(training)
    return module


def inputs(seed: int = 0, requires_grad: bool = False) -> tuple[Any, Any, Any]:
    """Query ``(batch, heads, seq, dim)``, key and value with half as many heads (GQA)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(BATCH, HEADS, SEQ, DIM, generator=gen, requires_grad=requires_grad)
    k = torch.randn(BATCH, KV_HEADS, SEQ, DIM, generator=gen)
    v = torch.randn(BATCH, KV_HEADS, SEQ, DIM, generator=gen)
    return q, k, v


def padded_causal_mask(kind: str) -> tuple[Any, Any]:
    """A causal mask whose second sequence is left-padded by two positions, in the form
    ``kind`` ("eager": additive float, "sdpa": boolean), and the boolean "may attend" mask."""
    import torch

    allowed = torch.ones(SEQ, SEQ, dtype=torch.bool).tril().expand(BATCH, 1, SEQ, SEQ).clone()
    allowed[1, :, :, :2] = False
    allowed[1, :, :2, :2] = torch.eye(2, dtype=torch.bool)  # padded rows see themselves only
    if kind == "sdpa":
        return allowed, allowed
    mask = torch.zeros(BATCH, 1, SEQ, SEQ).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return mask, allowed


def call(backend: AttentionBackend, fn: Any, module: Any, q: Any, k: Any, v: Any, mask: Any):
    """One call as transformers makes it (extra keyword arguments included)."""
    reseed = getattr(backend, "reseed", None)
    if callable(reseed):
        reseed()
    return fn(module, q, k, v, mask, scaling=DIM**-0.5, dropout=0.0, sliding_window=None)


def check_signature(fn: Any, who: str) -> None:
    """Callable as ``fn(module, query, key, value, attention_mask, scaling=, dropout=, **kw)``."""
    assert callable(fn), f"{who}: function() returned {fn!r}, not a callable"
    try:
        inspect.signature(fn).bind(None, 1, 2, 3, None, scaling=1.0, dropout=0.0, extra=1)
    except TypeError as exc:
        raise AssertionError(
            f"{who}: the attention function must take (module, query, key, value, "
            f"attention_mask, scaling=None, dropout=0.0, **kwargs): {exc}"
        ) from None


def check_output(result: Any, query: Any, who: str) -> None:
    """``(output (batch, seq, heads, dim) in the query's dtype, finite; weights or None)``."""
    import torch

    assert isinstance(result, tuple) and len(result) == 2, (
        f"{who}: must return (attn_output, attn_weights), got {type(result).__name__}"
    )
    out, weights = result
    b, h, s, d = query.shape
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (b, s, h, d), (
        f"{who}: output must be (batch, seq, heads, head_dim) = {(b, s, h, d)}, got "
        f"{tuple(getattr(out, 'shape', ()))} (transpose(1, 2) the (batch, heads, seq, dim) result)"
    )
    assert out.dtype == query.dtype, f"{who}: output dtype {out.dtype}, query {query.dtype}"
    assert torch.isfinite(out).all(), f"{who}: non-finite output"
    if weights is not None:
        assert tuple(weights.shape) == (b, h, s, s), (
            f"{who}: weights must be (batch, heads, seq, keys) or None, got {tuple(weights.shape)}"
        )


def check_masked_keys_ignored(first: Any, second: Any, rows: Any, who: str) -> None:
    """The outputs of the ``rows`` (boolean, (batch, seq)) that may not attend to any changed
    key are the same in both calls."""
    import torch

    a, b = first[0][rows], second[0][rows]
    worst = float((a - b).abs().max())
    assert torch.allclose(a, b, atol=1e-4), (
        f"{who}: changing keys and values that the mask hides changed the output by {worst:.3g}; "
        "the attention mask (or the causal mask) is not applied"
    )


def perturb(k: Any, v: Any, allowed: Any) -> tuple[Any, Any, Any]:
    """Keys and values changed at the padding of the second sequence and at the last
    position; returns them and the rows (batch, seq) that may attend to none of those."""
    import torch

    changed = torch.zeros(BATCH, SEQ, dtype=torch.bool)
    changed[1, :2] = True
    changed[:, -1] = True
    k2, v2 = k.clone(), v.clone()
    k2[changed.nonzero(as_tuple=True)[0], :, changed.nonzero(as_tuple=True)[1]] += 3.0
    v2[changed.nonzero(as_tuple=True)[0], :, changed.nonzero(as_tuple=True)[1]] += 1000.0
    rows = ~(allowed[:, 0] & changed[:, None, :]).any(dim=-1)
    return k2, v2, rows


class AttentionConformance:
    """Every ``test_*`` method calls the backend's function on small random tensors."""

    backend: ClassVar[Target | None] = None
    backend_options: ClassVar[dict[str, Any]] = {}

    def make_backend(self) -> AttentionBackend:
        if self.backend is None:
            raise TypeError(f"{type(self).__name__}: set `backend = ...` on the class")
        return make_component(self.backend, AttentionBackend, self.backend_options)

    @property
    def who(self) -> str:
        return f"attention backend {self.backend!r}"

    def test_signature_and_shape(self) -> None:
        backend = self.make_backend()
        assert backend.mask_interface in ("eager", "sdpa"), f"{self.who}: mask_interface"
        fn = backend.function()
        check_signature(fn, self.who)
        q, k, v = inputs()
        mask, _ = padded_causal_mask(backend.mask_interface)
        check_output(call(backend, fn, _module(), q, k, v, mask), q, self.who)

    def test_mask_is_applied(self) -> None:
        backend = self.make_backend()
        fn = backend.function()
        q, k, v = inputs()
        mask, allowed = padded_causal_mask(backend.mask_interface)
        k2, v2, rows = perturb(k, v, allowed)
        assert rows.any() and not rows.all()
        first = call(backend, fn, _module(), q, k, v, mask)
        second = call(backend, fn, _module(), q, k2, v2, mask)
        check_masked_keys_ignored(first, second, rows, self.who)

    def test_causal_without_a_mask(self) -> None:
        backend = self.make_backend()
        if backend.mask_interface != "sdpa":
            import pytest

            pytest.skip("eager backends always get a mask")
        fn = backend.function()
        q, k, v = inputs()
        _, causal = padded_causal_mask("sdpa")
        causal[:] = causal[0]  # no padding: what a plain causal batch means
        k2, v2, rows = perturb(k, v, causal)
        first = call(backend, fn, _module(causal=True), q, k, v, None)
        second = call(backend, fn, _module(causal=True), q, k2, v2, None)
        check_masked_keys_ignored(first, second, rows, self.who)

    def test_gradients_flow(self) -> None:
        import torch

        backend = self.make_backend()
        fn = backend.function()
        q, k, v = inputs(requires_grad=True)
        mask, _ = padded_causal_mask(backend.mask_interface)
        out, _ = call(backend, fn, _module(training=True), q, k, v, mask)
        if out.requires_grad:
            out.sum().backward()
        assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0, (
            f"{self.who}: no finite, non-zero gradient reaches the query (training needs one)"
        )
