"""lclib.scaling: each method against values derived by hand, its defining properties, RopeScaling."""

import math

import pytest
import torch

from lclib import rope, scaling
from lclib.scaling import RopeScaling

T = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
THETA = T(1.0, 0.1, 0.01, 0.001)  # head_dim 8, base 10000: theta_i = 10000^(-2i/8) = 10^(-i)
CONFIGS = [(8, 10000.0), (16, 500.0), (64, 10000.0), (128, 10000.0), (128, 500000.0)]


# --- values derived by hand, head_dim 8, base 10000 --------------------------------------------

def test_linear_by_hand():
    inv_freq, factor = scaling.linear(8, 10000.0, 2.0)
    torch.testing.assert_close(inv_freq, T(0.5, 0.05, 0.005, 0.0005))
    assert factor == 1.0 and inv_freq.dtype == torch.float64 and inv_freq.shape == (4,)


def test_ntk_by_hand():
    # base' = 10000 * 2^(8/6); theta'_i = base'^(-2i/8) = 10^(-i) * 2^(-i/3)
    inv_freq, factor = scaling.ntk(8, 10000.0, 2.0)
    torch.testing.assert_close(inv_freq, T(1.0, 0.1 * 2 ** (-1 / 3), 0.01 * 2 ** (-2 / 3), 0.001 / 2))
    assert factor == 1.0


@pytest.mark.parametrize("seq_len, alpha", [(1, 1.0), (16, 1.0), (24, 2.0), (32, 3.0)])
def test_dynamic_ntk_by_hand(seq_len, alpha):
    # s = 2, L = 16: alpha = 2 * max(seq_len, 16) / 16 - 1
    inv_freq, factor = scaling.dynamic_ntk(8, 10000.0, 2.0, 16, seq_len)
    torch.testing.assert_close(inv_freq, THETA * alpha ** (-torch.arange(4) / 3))
    assert factor == 1.0


def test_yarn_by_hand():
    # d = 8, base 1e4, L = 2000: index of beta turns = 4 ln(L / (2 pi beta)) / ln(1e4) = log10(L / (2 pi beta))
    # beta_fast 32 -> 0.998 -> floor 0; beta_slow 1 -> 2.503 -> ceil 3; gamma = i / 3
    assert scaling.yarn_correction_range(8, 10000.0, 2000) == (0, 3)
    torch.testing.assert_close(scaling.yarn_ramp(8, 10000.0, 2000), T(0, 1 / 3, 2 / 3, 1))
    inv_freq, factor = scaling.yarn(8, 10000.0, 4.0, 2000)  # theta_i * (1 - gamma_i) + theta_i / 4 * gamma_i
    torch.testing.assert_close(inv_freq, T(1.0, 0.075, 0.005, 0.00025))
    assert factor == pytest.approx(0.1 * math.log(4) + 1)
    assert scaling.yarn(8, 10000.0, 4.0, 2000, attention_factor=1.5)[1] == 1.5


def test_yarn_without_truncation_by_hand():
    low, high = math.log10(2000 / (2 * math.pi * 32)), math.log10(2000 / (2 * math.pi))
    assert scaling.yarn_correction_range(8, 10000.0, 2000, truncate=False) == pytest.approx((low, high))
    gamma = ((torch.arange(4, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    inv_freq, _ = scaling.yarn(8, 10000.0, 4.0, 2000, truncate=False)
    torch.testing.assert_close(inv_freq, THETA * (1 - gamma) + THETA / 4 * gamma)
    assert gamma[0] == 0 and 0 < gamma[1] < gamma[2] < 1 and gamma[3] == 1


def test_llama3_by_hand():
    # wavelengths 2 pi [1, 10, 100, 1000]; L = 1000: kept below 250, divided above 1000, pair 2 (628.3) mixed
    inv_freq, factor = scaling.llama3(8, 10000.0, 8.0, 1000)
    smooth = (1000 / (200 * math.pi) - 1) / 3
    torch.testing.assert_close(inv_freq, T(1.0, 0.1, 0.01 * ((1 - smooth) / 8 + smooth), 0.001 / 8))
    assert factor == 1.0


def test_llama3_published_bands():
    theta = rope.inv_freq(128, 500000.0)
    ratio = theta / scaling.llama3(128, 500000.0, 8.0, 8192)[0]
    kept, divided = torch.isclose(ratio, T(1.0)), torch.isclose(ratio, T(8.0))
    assert (int(kept.sum()), int((~kept & ~divided).sum()), int(divided.sum())) == (29, 6, 29)


# --- properties -----------------------------------------------------------------------------------

@pytest.mark.parametrize("head_dim, base", CONFIGS)
def test_scale_one_is_plain_rope(head_dim, base):
    plain = rope.inv_freq(head_dim, base)
    for inv_freq, factor in (scaling.linear(head_dim, base, 1.0), scaling.ntk(head_dim, base, 1.0),
                             scaling.dynamic_ntk(head_dim, base, 1.0, 64, 64), scaling.yarn(head_dim, base, 1.0, 64),
                             scaling.llama3(head_dim, base, 1.0, 64)):
        torch.testing.assert_close(inv_freq, plain)
        assert factor == 1.0
    # dynamic NTK at s = 1 still grows past L (alpha = seq_len / L), as in transformers
    torch.testing.assert_close(scaling.dynamic_ntk(head_dim, base, 1.0, 64, 1000)[0], scaling.ntk(head_dim, base, 1000 / 64)[0])


@pytest.mark.parametrize("head_dim, base", CONFIGS)
@pytest.mark.parametrize("scale", [1.5, 4.0, 32.0])
def test_linear_and_ntk_properties(head_dim, base, scale):
    plain = rope.inv_freq(head_dim, base)
    torch.testing.assert_close(scaling.linear(head_dim, base, scale)[0], plain / scale)
    ntk = scaling.ntk(head_dim, base, scale)[0]
    torch.testing.assert_close(ntk[0], plain[0])  # pair 0 unchanged
    torch.testing.assert_close(ntk[-1], plain[-1] / scale)  # last pair divided by exactly s
    assert torch.all(ntk[1:] < plain[1:]) and torch.all(ntk.diff() < 0)


@pytest.mark.parametrize("head_dim, base", CONFIGS)
@pytest.mark.parametrize("scale, L", [(2.0, 256), (4.0, 4096), (8.0, 512)])
def test_dynamic_ntk_properties(head_dim, base, scale, L):
    plain = rope.inv_freq(head_dim, base)
    for seq_len in (1, L // 2, L):
        torch.testing.assert_close(scaling.dynamic_ntk(head_dim, base, scale, L, seq_len)[0], plain)
    at_sL = scaling.dynamic_ntk(head_dim, base, scale, L, int(scale * L))[0]
    torch.testing.assert_close(at_sL, scaling.ntk(head_dim, base, scale**2 - scale + 1)[0])
    longer = scaling.dynamic_ntk(head_dim, base, scale, L, 2 * int(scale * L))[0]
    assert torch.all(longer[1:] < at_sL[1:])  # the base keeps growing past s L


@pytest.mark.parametrize("head_dim, base", CONFIGS)
@pytest.mark.parametrize("L, beta_fast, beta_slow", [(4096, 32.0, 1.0), (512, 16.0, 2.0), (2048, 64.0, 0.5)])
@pytest.mark.parametrize("truncate", [True, False])
def test_yarn_keeps_fast_pairs_and_interpolates_slow_ones(head_dim, base, L, beta_fast, beta_slow, truncate):
    scale = 4.0
    plain = rope.inv_freq(head_dim, base)
    wavelength = rope.wavelengths(plain)
    inv_freq, factor = scaling.yarn(head_dim, base, scale, L, beta_fast, beta_slow, truncate)
    fast, slow = wavelength < L / beta_fast, wavelength > L / beta_slow
    assert torch.equal(inv_freq[fast], plain[fast])
    torch.testing.assert_close(inv_freq[slow], plain[slow] / scale)
    assert torch.all(inv_freq <= plain) and torch.all(inv_freq >= plain / scale * (1 - 1e-12))
    assert factor == pytest.approx(0.1 * math.log(scale) + 1)


def yarn_reference(head_dim, base, scale, L, beta_fast=32.0, beta_slow=1.0):
    """A transcription of transformers' _compute_yarn_parameters, structured as there."""
    def find_correction_dim(num_rotations):
        return (head_dim * math.log(L / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(find_correction_dim(beta_fast)), 0)
    high = min(math.ceil(find_correction_dim(beta_slow)), head_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    pos_freqs = base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    extrapolation_factor = 1 - ramp
    return (1.0 / (scale * pos_freqs)) * (1 - extrapolation_factor) + (1.0 / pos_freqs) * extrapolation_factor


@pytest.mark.parametrize("head_dim, base", CONFIGS)
@pytest.mark.parametrize("L", [64, 2048, 10**6])
def test_yarn_matches_transformers_structure(head_dim, base, L):
    torch.testing.assert_close(scaling.yarn(head_dim, base, 16.0, L)[0], yarn_reference(head_dim, base, 16.0, L))


def test_llama3_continuous_at_band_edges():
    # pair 3 of (8, 1e4) has wavelength 2000 pi = 6283.19; move L across each edge by one token
    w, s = 2000 * math.pi, 8.0

    def ratio(L):
        return (THETA[3] / scaling.llama3(8, 10000.0, s, L)[0][3]).item()

    below, above = math.floor(w), math.ceil(w)  # low edge: wavelength = L / low_freq_factor
    assert ratio(below) == pytest.approx(s) and ratio(above) < s and ratio(below) - ratio(above) < 1e-3 * s
    below, above = math.floor(4 * w), math.ceil(4 * w)  # high edge: wavelength = L / high_freq_factor
    assert ratio(above) == pytest.approx(1.0) and ratio(below) > 1 and ratio(below) - ratio(above) < 1e-3 * s
    # and monotone in between: longer training context, less division
    ratios = [ratio(L) for L in range(6000, 26000, 500)]
    assert all(a >= b for a, b in zip(ratios, ratios[1:]))


@pytest.mark.parametrize("head_dim, base", CONFIGS)
def test_llama3_between_plain_and_divided(head_dim, base):
    plain = rope.inv_freq(head_dim, base)
    inv_freq = scaling.llama3(head_dim, base, 8.0, 1024)[0]
    assert torch.all(inv_freq <= plain) and torch.all(inv_freq >= plain / 8 * (1 - 1e-12))
    assert torch.all(inv_freq.diff() < 0)


# --- bad arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("call, name", [
    (lambda: scaling.linear(8, 10000.0, 0.5), "scale"),
    (lambda: scaling.ntk(8, 10000.0, 0.99), "scale"),
    (lambda: scaling.ntk(2, 10000.0, 2.0), "head_dim"),
    (lambda: scaling.linear(7, 10000.0, 2.0), "head_dim"),
    (lambda: scaling.dynamic_ntk(8, 10000.0, 2.0, 16, 0), "seq_len"),
    (lambda: scaling.dynamic_ntk(8, 10000.0, 2.0, 0, 4), "original_max_len"),
    (lambda: scaling.yarn(8, 10000.0, 2.0, 64, beta_fast=1.0, beta_slow=1.0), "beta_fast"),
    (lambda: scaling.yarn(8, 10000.0, 2.0, 64, beta_fast=1.0, beta_slow=2.0), "beta_fast"),
    (lambda: scaling.yarn(8, 10000.0, 2.0, 64, attention_factor=0.0), "attention_factor"),
    (lambda: scaling.llama3(8, 10000.0, 2.0, 64, low_freq_factor=4.0, high_freq_factor=1.0), "high_freq_factor"),
    (lambda: RopeScaling("rope"), "method"),
    (lambda: RopeScaling("linear", 0.5), "scale"),
    (lambda: RopeScaling("none", 2.0), "scale"),
    (lambda: RopeScaling("yarn", 2.0), "original_max_len"),
    (lambda: RopeScaling("yarn", 2.0, 64, beta_fast=0.5), "beta_fast"),
    (lambda: RopeScaling("dynamic_ntk", 2.0, 64).frequencies(8, 10000.0, seq_len=0), "seq_len"),
])
def test_bad_arguments_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# --- RopeScaling ----------------------------------------------------------------------------------

def test_rope_scaling_none_is_plain():
    inv_freq, factor = RopeScaling("none").frequencies(16, 10000.0)
    assert torch.equal(inv_freq, rope.inv_freq(16, 10000.0)) and factor == 1.0
    assert RopeScaling() == RopeScaling("none")


@pytest.mark.parametrize("config, want", [
    (RopeScaling("linear", 4.0), scaling.linear(16, 500.0, 4.0)),
    (RopeScaling("ntk", 4.0), scaling.ntk(16, 500.0, 4.0)),
    (RopeScaling("dynamic_ntk", 4.0, 64), scaling.dynamic_ntk(16, 500.0, 4.0, 64, 200)),
    (RopeScaling("yarn", 4.0, 64, beta_fast=8.0, truncate=False), scaling.yarn(16, 500.0, 4.0, 64, 8.0, 1.0, False)),
    (RopeScaling("llama3", 4.0, 64, high_freq_factor=2.0), scaling.llama3(16, 500.0, 4.0, 64, 1.0, 2.0)),
])
def test_rope_scaling_dispatches_to_the_functions(config, want):
    inv_freq, factor = config.frequencies(16, 500.0, seq_len=200)
    assert inv_freq.shape == (8,) and inv_freq.dtype == torch.float64
    torch.testing.assert_close(inv_freq, want[0])
    assert factor == want[1]


def test_rope_scaling_dynamic_without_seq_len_is_plain_and_value_is_frozen():
    config = RopeScaling("dynamic_ntk", 4.0, 64)
    torch.testing.assert_close(config.frequencies(16, 500.0)[0], rope.inv_freq(16, 500.0))
    with pytest.raises(AttributeError):
        config.scale = 2.0  # type: ignore[misc]
    assert hash(config) == hash(RopeScaling("dynamic_ntk", 4.0, 64))


def test_rope_scaling_from_dict():
    hf = {"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 512}
    assert RopeScaling.from_dict(hf) == RopeScaling("yarn", 4.0, 512)
    dynamic = {"type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 64}
    assert RopeScaling.from_dict(dynamic) == RopeScaling("dynamic_ntk", 2.0, 64)
    assert RopeScaling.from_dict(None) == RopeScaling("none")
    config = RopeScaling("llama3", 8.0, 8192, high_freq_factor=4.0)
    assert RopeScaling.from_dict(config.to_dict()) == config
    for config in (RopeScaling("linear", 2.0), RopeScaling("dynamic_ntk", 2.0, 64), RopeScaling("yarn", 4.0, 512, attention_factor=1.2),
                   RopeScaling("llama3", 8.0, 8192)):
        assert RopeScaling.from_dict(config.to_hf()) == config
    assert RopeScaling("yarn", 4.0, 512).to_hf() == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512,
                                                     "beta_fast": 32.0, "beta_slow": 1.0, "truncate": True}
    assert RopeScaling("none").to_hf() is None
    with pytest.raises(ValueError, match="ntk"):
        RopeScaling("ntk", 2.0).to_hf()
    with pytest.raises(ValueError, match="unknown key"):
        RopeScaling.from_dict({"method": "linear", "scaling": 2.0})


# --- the notebook's checkers ----------------------------------------------------------------------

def yarn_untouched(head_dim, base, original_max_len, beta_fast=32.0):
    low = math.floor(head_dim * math.log(original_max_len / (2 * math.pi * beta_fast)) / (2 * math.log(base)))
    return min(max(low, 0) + 1, head_dim // 2)


def dynamic_inv_freq(head_dim, base, scale, original_max_len, seq_len, shift=0):
    alpha = scale * max(seq_len - shift, original_max_len) / original_max_len - (scale - 1)
    return rope.inv_freq(head_dim, base * alpha ** (head_dim / (head_dim - 2)))


def stub(*args):
    raise NotImplementedError


def test_scaling_checkers_pass_right_answers_and_fail_wrong_ones(capsys):
    from lclib import checks

    assert checks.check_ntk_exponent(lambda d: d / (d - 2)) is True
    assert checks.check_yarn_untouched_pairs(yarn_untouched) is True
    assert checks.check_dynamic_ntk(dynamic_inv_freq) is True
    assert "Correct" in capsys.readouterr().out
    for check in (checks.check_ntk_exponent, checks.check_yarn_untouched_pairs, checks.check_dynamic_ntk):
        assert check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="exponent 1"):
        checks.check_ntk_exponent(lambda d: 1.0)
    with pytest.raises(checks.CheckFailed, match="paper's rule"):
        checks.check_yarn_untouched_pairs(
            lambda d, b, L, beta: int((rope.wavelengths(rope.inv_freq(d, b)) < L / beta).sum()))
    with pytest.raises(checks.CheckFailed, match="off by one"):
        checks.check_dynamic_ntk(lambda *a: dynamic_inv_freq(*a, shift=1))
    with pytest.raises(checks.CheckFailed, match="max"):
        checks.check_dynamic_ntk(lambda d, b, s, L, n: rope.inv_freq(d, b * (s * n / L - s + 1) ** (d / (d - 2)))
                                 if n >= L else rope.inv_freq(d, b) * 2)
    with pytest.raises(checks.CheckFailed, match="alpha\\^"):
        checks.check_dynamic_ntk(lambda d, b, s, L, n: rope.inv_freq(d, b * (s * max(n, L) / L - s + 1)))
