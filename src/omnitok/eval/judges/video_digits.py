"""The digit of each frame of a moving-digit video, read by the digit judge after MNIST framing.

    labels = frame_digits(classifier, video)   # video (T, 3|1, H, W) in [-1, 1] -> (T,) long
    crops = mnist_framing(video)               # (T, 1, 28, 28): each frame's sprite cropped and centred

The digit judge (:mod:`.digit_classifier`) is trained on MNIST, where a digit fills a 20 px box centred by its
mass in a 28 px image. A video frame holds a 14 px digit anywhere in a 32 px frame (data/sources/video.py), so the
whole frame, resized, reads as one class whatever the digit (16.9% on real held-out clips, docs/results.md). This
module gives each frame MNIST's framing first: the bounding box of the bright pixels, a square around it scaled so
the box fills 22 of 28 px, centred on the intensity centroid, contrast stretched to [-1, 1]. A frame with no
bright pixel (a black frame) is left as the whole frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["frame_digits", "mnist_framing"]

SIDE = 28  # the judge's input side
# MNIST's digits fill a 20 px box of 28; the video's 14 px sprites (Lanczos-shrunk, thinner strokes) read best a
# little larger: 96.0% of 275 real held-out frames at 22 px against 94.5% at 20 (2026-12-03, quickstart clips)
BOX = 22


def _grey(video: Tensor) -> Tensor:
    """(T, 3|1, H, W) or (T, H, W) -> (T, H, W) float."""
    if video.ndim == 4 and video.shape[1] in (1, 3):
        return video.float().mean(1)
    if video.ndim == 3:
        return video.float()
    raise ValueError(f"video: expected (T, 1|3, H, W) or (T, H, W), got shape {tuple(video.shape)}")


def mnist_framing(video: Tensor, threshold: float = 0.3) -> Tensor:
    """(T, 3|1, H, W) in [-1, 1], bright sprites on dark -> (T, 1, 28, 28) in [-1, 1], each frame's sprite centred.

    Foreground: pixels brighter than the frame's median by more than ``threshold`` of its peak contrast."""
    g = _grey(video)  # (T, H, W)
    T, H, W = g.shape
    base = g.flatten(1).median(1).values  # (T,) background
    peak = g.flatten(1).amax(1)
    contrast = (peak - base).clamp_min(1e-6)
    norm = ((g - base[:, None, None]) / contrast[:, None, None]).clamp(0, 1)  # 0 background, 1 brightest
    fg = norm > threshold  # (T, H, W)
    ys = torch.arange(H, dtype=torch.float32)
    xs = torch.arange(W, dtype=torch.float32)
    thetas = []
    for t in range(T):
        if not bool(fg[t].any()) or float(peak[t] - base[t]) < 1e-3:
            thetas.append(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # nothing bright: the whole frame
            continue
        rows, cols = fg[t].any(1), fg[t].any(0)
        y0, y1 = ys[rows].min(), ys[rows].max() + 1
        x0, x1 = xs[cols].min(), xs[cols].max() + 1
        w = norm[t] * fg[t]
        cy = float((w.sum(1) * (ys + 0.5)).sum() / w.sum())  # centroid in pixel units (pixel centres)
        cx = float((w.sum(0) * (xs + 0.5)).sum() / w.sum())
        side = float(max(y1 - y0, x1 - x0)) * SIDE / BOX  # crop side in px
        # affine_grid maps the output [-1, 1] square onto the input's normalised coordinates
        sx, sy = side / W, side / H
        tx, ty = 2 * cx / W - 1, 2 * cy / H - 1
        thetas.append(torch.tensor([[sx, 0.0, tx], [0.0, sy, ty]]))
    theta = torch.stack(thetas)  # (T, 2, 3)
    grid = F.affine_grid(theta, [T, 1, SIDE, SIDE], align_corners=False)
    crops = F.grid_sample(norm[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops * 2 - 1  # (T, 1, 28, 28), background -1


def frame_digits(classifier, video: Tensor) -> Tensor:
    """The judge's digit for every frame of ``video`` (T, 3|1, H, W) in [-1, 1] -> (T,) long."""
    return classifier.predict(mnist_framing(video))
