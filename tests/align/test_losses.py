"""The contrastive losses against naive references: symmetric, label-aware targets, de-duplication, SigLIP."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from omnitok.align import AlignConfig, AlignModel, clip_loss, siglip_loss
from omnitok.align.clip_loss import TARGETS


def _pairs(n: int = 12, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    b = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    labels = torch.randint(0, 4, (n,), generator=g)
    return a, b, labels


@pytest.mark.parametrize("targets", TARGETS)
def test_clip_loss_is_symmetric(targets: str) -> None:
    a, b, labels = _pairs()
    scale = torch.tensor(14.0, dtype=torch.float64)
    torch.testing.assert_close(clip_loss(a, b, scale, labels, targets), clip_loss(b, a, scale, labels, targets))
    assert not torch.isclose(clip_loss(a, b, scale, labels, targets), clip_loss(a, a.flip(0), scale, labels, targets))


@pytest.mark.parametrize("with_labels", [False, True])
def test_siglip_loss_is_symmetric(with_labels: bool) -> None:
    a, b, labels = _pairs()
    lab = labels if with_labels else None
    s, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)
    torch.testing.assert_close(siglip_loss(a, b, s, bias, lab), siglip_loss(b, a, s, bias, lab))


def test_clip_loss_matches_references() -> None:
    a, b, labels = _pairs()
    scale = torch.tensor(20.0, dtype=torch.float64)
    logits = scale * a @ b.T
    diag = (F.cross_entropy(logits, torch.arange(12)) + F.cross_entropy(logits.T, torch.arange(12))) / 2
    torch.testing.assert_close(clip_loss(a, b, scale), diag)
    # label-aware: row i's target spreads evenly over every pair with its label, both directions
    ref = 0.0
    for lg in (logits, logits.T):
        for i in range(12):
            pos = (labels == labels[i]).nonzero().flatten()
            ref += -lg[i].log_softmax(-1)[pos].mean()
    torch.testing.assert_close(clip_loss(a, b, scale, labels, "label"), ref / 24)
    # dedup: the plain loss over the first pair of each label only
    keep = [int((labels == v).nonzero()[0]) for v in labels.unique()]
    keep_t = torch.tensor(sorted(keep))
    torch.testing.assert_close(clip_loss(a, b, scale, labels, "dedup"), clip_loss(a[keep_t], b[keep_t], scale))


def test_label_targets_prefer_classes_diagonal_prefers_instances() -> None:
    """Six pairs of two classes. With label-aware targets the class-collapsed embedding (every pair of a class at
    one point) is the minimum and telling pairs of one class apart costs; the diagonal CLIP loss wants the opposite,
    which is what it does to ten digit classes with several captions each."""
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    e = torch.eye(6, dtype=torch.float64)
    collapsed, instances = e[[0, 0, 0, 1, 1, 1]], e
    scale = torch.tensor(10.0, dtype=torch.float64)
    label = {name: clip_loss(x, x, scale, labels, "label") for name, x in (("c", collapsed), ("i", instances))}
    diag = {name: clip_loss(x, x, scale) for name, x in (("c", collapsed), ("i", instances))}
    assert math.isclose(float(label["c"]), math.log(3), abs_tol=1e-3)  # the entropy of the soft targets
    assert label["c"] < label["i"]
    assert diag["i"] < 1e-3 < diag["c"]


def test_siglip_loss_matches_reference() -> None:
    a, b, labels = _pairs()
    s, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-5.0, dtype=torch.float64)
    z = 2 * (labels[:, None] == labels[None, :]).double() - 1
    ref = -F.logsigmoid(z * (s * a @ b.T + bias)).sum() / 12
    torch.testing.assert_close(siglip_loss(a, b, s, bias, labels), ref)


def test_temperature_is_clamped() -> None:
    cfg = AlignConfig.from_dict({"vocab_size": 300, "embed_dim": 16, "text": {"dim": 16, "n_layer": 1, "n_head": 2},
                                 "image": {"widths": [8]}})
    model = AlignModel(cfg)
    assert math.isclose(float(model.scale("image").detach()), 1 / 0.07, rel_tol=1e-5)  # CLIP's initial temperature
    with torch.no_grad():
        model.logit_scale["image"].fill_(12.0)  # exp(12) = 162,755
    assert math.isclose(float(model.scale("image").detach()), 100.0, rel_tol=1e-5)
    model.clamp_logit_scales_()
    assert math.isclose(float(model.logit_scale["image"].detach()), math.log(100.0), rel_tol=1e-6)
    with torch.no_grad():
        model.logit_scale["image"].fill_(-3.0)
    model.clamp_logit_scales_()
    assert float(model.logit_scale["image"].detach()) == 0.0  # never a temperature above 1
