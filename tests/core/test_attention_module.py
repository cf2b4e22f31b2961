"""The drop-in MultiheadAttention: torch's outputs with the exact backend, masks honoured by
sampled backends."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from qslm.attention.module import MultiheadAttention  # noqa: E402
from qslm.attention.sampled import SampledAttention  # noqa: E402


def pair(batch_first, **kwargs):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first, **kwargs).double().eval()
    ours = MultiheadAttention(16, 4, batch_first=batch_first, **kwargs).double().eval()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
def test_exact_backend_matches_torch(batch_first, mask_kind):
    ref, ours = pair(batch_first)
    g = torch.Generator().manual_seed(1)
    shape = (2, 5, 16) if batch_first else (5, 2, 16)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    mem = torch.randn(*((2, 6, 16) if batch_first else (6, 2, 16)), generator=g)
    mem = mem.double()
    kpm = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    kwargs = {"key_padding_mask": kpm}
    if mask_kind == "bool":
        kwargs["attn_mask"] = torch.rand(5, 6, generator=g) < 0.3
        kwargs["attn_mask"][:, 0] = False
    elif mask_kind == "float":
        kwargs["attn_mask"] = torch.randn(5, 6, generator=g, dtype=torch.float64)
    if mask_kind == "causal":
        mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
        a = ref(x, x, x, attn_mask=mask, is_causal=True)
        b = ours(x, x, x, attn_mask=None, is_causal=True)
    else:
        a = ref(x, mem, mem, **kwargs)
        b = ours(x, mem, mem, **kwargs)
    torch.testing.assert_close(b[0], a[0])
    torch.testing.assert_close(b[1], a[1])


def test_sampled_backend_never_reads_a_padded_key_and_trains():
    _, ours = pair(True)
    ours.backend = SampledAttention(SampledAttention.Options(strategy="stratified", samples=4))
    ours._attend = ours.backend.function()
    x = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    out, w = ours(x, x, x, key_padding_mask=kpm, average_attn_weights=False)
    assert (w[1, :, :, 3:] == 0).all()
    out.sum().backward()
    assert ours.in_proj_weight.grad.abs().sum() > 0


def test_backend_by_registered_name():
    m = MultiheadAttention(8, 2, backend="sampled")
    assert type(m.backend).__name__ == "SampledAttention"


def test_unsupported_arguments_are_refused_clearly():
    import pytest

    from qslm.attention.module import MultiheadAttention

    with pytest.raises(ValueError, match="does not support add_bias_kv"):
        MultiheadAttention(16, 2, add_bias_kv=True, backend="exact")
