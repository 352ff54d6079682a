"""Multichannel Wiener filter: its defining properties, and Open-Unmix's filtering.py numbers."""
import pytest
import torch

from banda.wiener import wiener


def problem(seed=0, batch=1, sources=3, channels=2, freq=65, frames=40):
    """A random complex mixture ``(b, c, f, t)`` and nonnegative magnitude estimates
    ``(b, j, c, f, t)`` that roughly share its energy."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.complex(torch.randn(batch, channels, freq, frames, generator=g),
                        torch.randn(batch, channels, freq, frames, generator=g)) * 20
    share = torch.rand(batch, sources, channels, freq, frames, generator=g)
    mags = share / share.sum(1, keepdim=True) * mix.abs().unsqueeze(1)
    return mags, mix


def test_no_iterations_is_the_mixture_phase():
    mags, mix = problem()
    y = wiener(mags, mix, iterations=0)
    assert y.shape == mags.shape and y.dtype == torch.complex64
    torch.testing.assert_close(y.abs(), mags, rtol=1e-5, atol=1e-5)
    phase_err = (y * mix.unsqueeze(1).conj()).angle().abs().max()
    assert phase_err < 1e-5
    # a silent bin of the mixture gives silent estimates (no NaN from its phase)
    mix[..., 3] = 0
    mags[..., 3] = 0
    assert torch.isfinite(torch.view_as_real(wiener(mags, mix, iterations=0))).all()
    assert wiener(mags, mix, iterations=0)[..., 3].abs().max() == 0


def test_softmask_and_residual_sum_to_the_mixture():
    mags, mix = problem(1)
    y = wiener(mags, mix, iterations=0, softmask=True)
    torch.testing.assert_close(y.sum(1), mix, rtol=1e-4, atol=1e-3)
    r = wiener(mags[:, :2], mix, iterations=0, residual=True)
    assert r.shape[1] == 3
    torch.testing.assert_close(r.sum(1), mix, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations", [1, 3])
def test_em_estimates_add_up_to_the_mixture(channels, iterations):
    """Wiener gains sum to ``I - sqrt(eps) C_x^-1``: the sources add up to the mixture."""
    mags, mix = problem(2, channels=channels)
    y = wiener(mags, mix, iterations=iterations, precision="float64")
    assert torch.isfinite(torch.view_as_real(y)).all()
    err = (y.sum(1) - mix).abs().max() / mix.abs().max()
    assert err < 1e-4  # the sqrt(eps) regulariser takes a little out of the quietest bins
    # the filter changed the initial estimates (it is not the identity)
    assert (y - wiener(mags, mix, iterations=0)).abs().max() > 1e-2 * mix.abs().max()


def test_precisions_agree_and_autocast_is_off():
    mags, mix = problem(3)
    y32 = wiener(mags, mix, iterations=2)
    y64 = wiener(mags, mix, iterations=2, precision="float64")
    assert y32.dtype == y64.dtype == torch.complex64  # the mixture's dtype
    assert (y32 - y64).abs().max() < 1e-5 * mix.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yac = wiener(mags.bfloat16(), mix, iterations=2)
    assert yac.dtype == torch.complex64
    assert (yac - y32).abs().max() < 1e-2 * mix.abs().max()  # only the bf16 input rounding


def test_batch_items_and_windows_are_independent():
    mags, mix = problem(4, batch=2, frames=50)
    mix[1] *= 30  # a louder item: the rescaling is per item
    y = wiener(mags, mix, iterations=1, window=20)
    for b in range(2):
        for s in (0, 20, 40):
            alone = wiener(mags[b:b + 1, ..., s:s + 20], mix[b:b + 1, ..., s:s + 20], iterations=1, window=None)
            torch.testing.assert_close(y[b:b + 1, ..., s:s + 20], alone, rtol=1e-4, atol=1e-4 * mix[b].abs().max().item())
    # one window over all frames differs (the spatial model is fit to other frames)
    assert (wiener(mags, mix, iterations=1, window=None) - y).abs().max() > 1e-3


def test_mono_magnitudes_broadcast_over_channels():
    mags, mix = problem(5)
    mono = mags.mean(2, keepdim=True)
    y = wiener(mono, mix, iterations=1)
    assert y.shape == mags.shape
    torch.testing.assert_close(y, wiener(mono.expand_as(mags), mix, iterations=1))


def test_gradients_flow():
    mags, mix = problem(6)
    for iterations in (0, 1):
        m = mags.clone().requires_grad_(True)
        wiener(m, mix, iterations=iterations).abs().sum().backward()
        assert torch.isfinite(m.grad).all() and m.grad.abs().sum() > 0


def test_errors():
    mags, mix = problem()
    with pytest.raises(ValueError, match="two sources"):
        wiener(mags[:, :1], mix, iterations=1)
    wiener(mags[:, :1], mix, iterations=1, residual=True)  # the residual is a second source
    with pytest.raises(ValueError, match="precision"):
        wiener(mags, mix, precision="float16")
    with pytest.raises(ValueError, match="do not fit"):
        wiener(mags[..., :-1], mix)
    with pytest.raises(ValueError, match="complex"):
        wiener(mags, mix.abs())


# ---------------------------------------------------------------------- Open-Unmix's numbers
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations,softmask,residual", [(0, False, False), (0, True, True), (1, False, False),
                                                          (1, False, True), (2, True, False)])
def test_matches_openunmix_filtering(channels, iterations, softmask, residual):
    filtering = pytest.importorskip("openunmix.filtering")
    mags, mix = problem(7, channels=channels, freq=129, frames=60)
    # Open-Unmix's layout: spectrograms (frames, freq, channels, sources), mixture (frames, freq, channels, 2)
    ref = filtering.wiener(mags[0].permute(3, 2, 1, 0), torch.view_as_real(mix[0].permute(2, 1, 0)).contiguous(),
                           iterations, softmask=softmask, residual=residual)
    ref = torch.view_as_complex(ref.permute(4, 2, 1, 0, 3).contiguous())
    y = wiener(mags, mix, iterations, softmask=softmask, residual=residual, window=None)[0]
    assert y.shape == ref.shape
    assert (y - ref).abs().max() <= 1e-6 * ref.abs().max()
