"""Translated views of the images in a document, for tokenising a training split more than once.

A document's images are encoded to a handful of codes (16 for a 32 px digit at f8), so a caption model sees
each training image as one fixed code sequence and memorises it. Shifting the image by a few pixels before
encoding gives a different code sequence for the same caption: the classic translation augmentation, done
before tokenisation because the LM only sees ids. Each view's shift is a function of the example key and the
view number, so a rerun writes identical shards.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import torch.nn.functional as F
from torch import Tensor

from omnitok.vocab.document import Document, Image

__all__ = ["shift_image", "view_shift", "image_views"]


def shift_image(x: Tensor, dy: int, dx: int) -> Tensor:
    """Translate ``x`` (C, H, W) by ``dy`` rows and ``dx`` columns; the uncovered border repeats the edge pixels."""
    if x.dim() != 3:
        raise ValueError(f"shift_image: expected an image (C, H, W), got shape {tuple(x.shape)}")
    _, h, w = x.shape
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"shift_image: shift ({dy}, {dx}) does not fit a {h}x{w} image")
    if dy == 0 and dx == 0:
        return x
    p = max(abs(dy), abs(dx))
    padded = F.pad(x[None], (p, p, p, p), mode="replicate")[0]  # (C, H + 2p, W + 2p)
    top, left = p - dy, p - dx
    return padded[:, top: top + h, left: left + w].contiguous()


def view_shift(key: str, view: int, max_shift: int) -> tuple[int, int]:
    """The (dy, dx) of view ``view`` of example ``key``: view 0 is the image itself, others are drawn uniformly
    from [-max_shift, max_shift]^2 without (0, 0) by a hash of the key and the view."""
    if view == 0 or max_shift <= 0:
        return 0, 0
    side = 2 * max_shift + 1
    h = int.from_bytes(hashlib.sha256(f"{key}#{view}".encode()).digest()[:8], "big")
    k = h % (side * side - 1)
    k += k >= (side * side) // 2  # skip the centre (no shift)
    return k // side - max_shift, k % side - max_shift


def image_views(doc: Document, key: str, views: int, max_shift: int) -> list[Document]:
    """``views`` documents: ``doc`` and ``views - 1`` copies whose images (with ``data``) are translated.
    A document without images comes back once."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    if views == 1 or not any(isinstance(s, Image) and s.data is not None for s in doc.segments):
        return [doc]
    out = [doc]
    for v in range(1, views):
        dy, dx = view_shift(key, v, max_shift)
        segs = [replace(s, data=shift_image(s.data, dy, dx), codes=None)
                if isinstance(s, Image) and s.data is not None else s for s in doc.segments]
        out.append(replace(doc, segments=segs, problems=[]))
    return out
