"""GlobalMotionCodec: the first frame through an image codec, every later frame as one global motion vector.

Videos are float tensors (B, C, T, H, W) in [-1, 1], as every video codec takes them. The first frame is coded by
the wrapped :class:`ImageCodec` (its h x w codes); each later frame t is the decoded first frame translated by a
sub-pixel displacement D_t (bilinear, the uncovered border filled with the frame's background colour), the global
motion compensation of MPEG-4 Part 2 without a residual. The encoder finds the displacements in closed loop:
D_t = D_{t-1} + d_t, where the step d_t on a grid of ``step`` px within +-``max_step`` px per axis minimises the
squared error between the translated first frame and frame t (so quantisation errors do not add up). The search
is coarse to fine: the whole-pixel shift from the peak of the cross-correlation of frame t with the first frame
(FFT), then the steps within half a pixel of it. One code per step: id = ix * n + iy on the n x n grid of steps.

Code layout, so that a clip is one (t, h, w) grid of the vocabulary: codes (B, 1, h + k, w, 1) for
T = 1 + k * w frames; rows 0..h-1 hold the first frame's codes, row h + j column c the step into frame
1 + j * w + c. A 9-frame clip of 32 px digits with an f4 image codec (8 x 8 codes) is a 9 x 8 grid: 72 codes,
against 9 x 64 = 576 for the image codec on every frame (``frames.py``).

What it cannot code: content that does not move as one (two sprites moving apart, a sprite turning), and
anything entering the frame; the codec evaluation reports PSNR per kind of clip (eval/video_codec.py).

    codec = GlobalMotionCodec.from_image_codec(load_codec("runs/codec/quickstart-image/codec"))
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from omnitok.codecs.image import CodecOutput, ImageBasedCodec, ImageCodec, check_float_batch

__all__ = ["GlobalMotionCodec", "translate"]


def translate(x: Tensor, d: Tensor, background: Tensor) -> Tensor:
    """Move the content of images x (N, C, H, W) by d (N, 2) px (dx right, dy down), bilinearly; pixels that
    come from outside the image take ``background`` (N, C)."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * d[:, 0].to(x.dtype) / w  # output pixel p samples input p - d
    theta[:, 1, 2] = -2.0 * d[:, 1].to(x.dtype) / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = background[:, :, None, None].to(x.dtype)
    return F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + bg


def _background(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C): the median of each channel (the flat background of a sprite clip)."""
    return x.flatten(2).median(-1).values


def _bilinear_taps(d: Tensor, taps: int) -> tuple[Tensor, Tensor]:
    """Displacements d (B, K) px along one axis -> the smallest whole-pixel shift s0 (B,) int64 and weights
    (B, K, taps): moving a signal by d[b, k] with bilinear interpolation and zero fill is the sum over m of
    w[b, k, m] times the signal moved by s0[b] + m whole pixels (output p takes input p - d: weight 1 - f on the
    shift floor(d), f on floor(d) + 1, f = d - floor(d)). ``taps`` must exceed the span of floor(d) per row."""
    n = d.floor()
    f = d - n
    s0 = n.min(1).values  # (B,)
    m = (n - s0[:, None]).long()[..., None]  # (B, K, 1)
    taps = max(taps, int(m.max()) + 2) if m.numel() else taps  # a float rounding past the span: one tap more
    w = torch.zeros(*d.shape, taps, dtype=d.dtype, device=d.device)
    w.scatter_(2, m, 1 - f[..., None])
    w.scatter_add_(2, m + 1, f[..., None])
    return s0.long(), w


def _shifted_windows(padded: Tensor, sy: Tensor, sx: Tensor, h: int, w: int) -> Tensor:
    """``padded`` (B, 3h, 3w): images (B, h, w) with h rows / w columns of zeros on each side; whole-pixel
    shifts sy (B, Ty), sx (B, Tx) px (down, right) -> (B, Ty, Tx, h, w), each image moved by each (sx, sy)
    pair with zero fill (a shift of a whole side or more leaves zeros)."""
    windows = padded.unfold(1, h, 1).unfold(2, w, 1)  # (B, 2h+1, 2w+1, h, w) view: [b, h - sy, w - sx] = moved
    rows = h - sy.clamp(-h, h)
    cols = w - sx.clamp(-w, w)
    return windows[torch.arange(padded.shape[0], device=padded.device)[:, None, None], rows[:, :, None],
                   cols[:, None, :]]


class GlobalMotionCodec(ImageBasedCodec):
    """First frame by an image codec (constructor arguments in ``image``), later frames by quantised global
    motion steps of ``step`` px, at most ``max_step`` px per axis and frame. ``aspect``: frame width / height
    (1 for square clips), so a decoder tells the first frame's rows from the motion rows."""

    modality = "video"

    def __init__(self, image: dict[str, Any], step: float = 0.25, max_step: float = 2.0, aspect: float = 1.0) -> None:
        super().__init__()
        if not step > 0 or not max_step >= step:
            raise ValueError(f"GlobalMotionCodec: need 0 < step <= max_step, got step={step}, max_step={max_step}")
        self.image = ImageCodec(**image)
        if self.image.num_codebooks != 1:
            raise ValueError(f"GlobalMotionCodec: the image codec must have one codebook (its quantizer has "
                             f"{self.image.num_codebooks}); motion codes share the code grid with the first frame")
        self.config = {"image": dict(self.image.config), "step": float(step), "max_step": float(max_step),
                       "aspect": float(aspect)}
        self.aspect = float(aspect)
        self.in_channels = self.image.in_channels
        self.factor = self.image.factor
        self.step = float(step)
        self.levels = 2 * round(max_step / step) + 1  # steps per axis: -max_step .. +max_step
        half = self.levels // 2
        axis = torch.arange(-half, half + 1, dtype=torch.float32) * self.step
        # id = ix * levels + iy -> (dx, dy)
        self.register_buffer("steps", torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2),
                             persistent=False)
        self.weights_sha256: str | None = None

    @property
    def codebook_size(self) -> int:
        return max(self.image.codebook_size, self.levels * self.levels)

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, T, H, W) or (T, H, W) with T = 1 + k * w -> (1, h + k, w), (h, w) the image codec's grid."""
        if len(input_shape) not in (3, 4):
            raise ValueError(f"GlobalMotionCodec.code_grid: expected (C, T, H, W) or (T, H, W), "
                             f"got {tuple(input_shape)}")
        t = input_shape[-3]
        h, w = self.image.code_grid(tuple(input_shape[-2:]))
        if w != round(h * self.aspect):
            raise ValueError(f"GlobalMotionCodec: frames of {input_shape[-2]}x{input_shape[-1]} px; this codec was "
                             f"built for width / height = {self.aspect:g}")
        if t < 1 or (t - 1) % w:
            raise ValueError(f"GlobalMotionCodec: {t} frames; expected T = 1 + k * {w} (rows of motion codes as wide "
                             f"as the first frame's {h}x{w} codes), e.g. {1 + max(1, (t - 1) // w) * w}")
        return (1, h + (t - 1) // w, w)

    # ----- motion ------------------------------------------------------------------------------------------
    def estimate_motion(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> step ids (B, T - 1): each frame's displacement from frame 0, in closed loop.

        The squared error of the first frame translated by each of the 25 candidate displacements against frame t
        is computed without making the 25 translated frames: a bilinear translation is a weighted sum of whole-
        pixel shifts, and the candidates of a clip (one coarse shift, fractions on the step grid) share the
        Ty x Tx shifts s0 + (my, mx) of the first frame (3 x 3 for a 0.25 px step). With R_j those shifts and w_k
        candidate k's weights on them, |sum_j w_kj R_j - frame|^2 = w_k' G w_k - 2 w_k' c + |frame|^2, where the
        Gram matrix G = <R_i, R_j> and c = <R_j, frame> are dot products over the frame, summed in float64. The
        same figure as translating each candidate with ``translate`` (the test's naive reference), to float
        rounding."""
        b, _, t, hh, ww = x.shape
        g = x.float().mean(1)  # (B, T, H, W) grey
        g = g - _background(g)[..., None, None]  # every frame less its background (median)
        ref = g[:, 0]  # (B, H, W), background 0
        spec = torch.fft.rfft2(ref).conj()
        half = self.levels // 2
        off = torch.arange(-2, 3, device=x.device, dtype=torch.float32)
        taps = math.ceil((len(off) - 1) * self.step) + 2  # whole-pixel shifts per axis spanned by 5 steps
        ref_pad = F.pad(ref.double(), (ww, ww, hh, hh))  # (B, 3H, 3W)
        pos = torch.zeros(b, 2, device=x.device)
        rows = torch.arange(b, device=x.device)
        ids = []
        for i in range(1, t):
            frame = g[:, i]  # (B, H, W)
            corr = torch.fft.irfft2(torch.fft.rfft2(frame) * spec, s=(hh, ww)).flatten(1)  # (B, H*W)
            peak = corr.argmax(1)
            dy, dx = peak // ww, peak % ww
            coarse = torch.stack([(dx + ww // 2) % ww - ww // 2, (dy + hh // 2) % hh - hh // 2], 1).float()
            # steps within half a pixel of the coarse displacement, on the grid of steps
            centre = ((coarse - pos) / self.step).round().clamp(-half, half)  # (B, 2) in step units
            ix = (centre[:, 0:1] + off).clamp(-half, half)  # (B, 5)
            iy = (centre[:, 1:2] + off).clamp(-half, half)
            sx, wx = _bilinear_taps(pos[:, 0:1] + ix * self.step, taps)  # (B,), (B, 5, Tx)
            sy, wy = _bilinear_taps(pos[:, 1:2] + iy * self.step, taps)  # (B,), (B, 5, Ty)
            tx, ty = wx.shape[2], wy.shape[2]
            shifts = _shifted_windows(ref_pad, sy[:, None] + torch.arange(ty, device=x.device),
                                      sx[:, None] + torch.arange(tx, device=x.device), hh, ww)  # (B, Ty, Tx, H, W)
            r = shifts.reshape(b, ty * tx, hh * ww)
            f = frame.double().reshape(b, hh * ww, 1)
            gram = r @ r.transpose(1, 2)  # (B, Ty*Tx, Ty*Tx)
            cross = (r @ f)[..., 0]  # (B, Ty*Tx)
            # candidate (ix, iy) -> weight on shift (my, mx): wx * wy, candidates in id order (ix major)
            w2 = (wx[:, :, None, None, :] * wy[:, None, :, :, None]).double().reshape(b, -1, ty * tx)  # (B, 25, TyTx)
            err = ((w2 @ gram) * w2).sum(-1) - 2 * (w2 @ cross[..., None])[..., 0] + f.square().sum((1, 2))[:, None]
            best = err.argmin(1)  # (B,) the first of equal errors, as the candidates are ordered
            pick = torch.stack([ix[rows, best // len(off)], iy[rows, best % len(off)]], 1)  # (B, 2) in step units
            ids.append(((pick[:, 0] + half) * self.levels + pick[:, 1] + half).long())
            pos = pos + pick * self.step
        return torch.stack(ids, 1) if ids else torch.zeros(b, 0, dtype=torch.long, device=x.device)

    def _render(self, first: Tensor, ids: Tensor) -> Tensor:
        """first frame (B, C, H, W) and step ids (B, T-1) -> video (B, C, T, H, W)."""
        bg = _background(first)
        pos = self.steps.to(first.dtype)[ids].cumsum(1)  # (B, T-1, 2)
        frames = [first] + [translate(first, pos[:, i], bg) for i in range(ids.shape[1])]
        return torch.stack(frames, 2)

    def _check_video(self, x: Tensor) -> tuple[int, int]:
        check_float_batch(x, 5, self.in_channels, "GlobalMotionCodec", "(B, C, T, H, W)")
        _, h, w = self.code_grid(tuple(x.shape[1:]))
        return h, w

    # ----- codec interface ---------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> CodecOutput:
        """Reconstruction pass (the image codec's forward on the first frame; motion is searched, not learned)."""
        self._check_video(x)
        out = self.image(x[:, :, 0])
        with torch.no_grad():
            ids = self.estimate_motion(x)
        return CodecOutput(self._render(out.recon, ids), self._layout(out.codes, ids), out.loss, out.metrics)

    def _layout(self, first: Tensor, ids: Tensor) -> Tensor:
        """first-frame codes (B, h, w, 1) + step ids (B, k*w) -> codes (B, 1, h + k, w, 1)."""
        b, _, w = first.shape[:3]
        motion = ids.reshape(b, -1, w)[..., None]  # (B, k, w, 1): row j holds the steps into frames 1 + j*w ..
        return torch.cat([first.long(), motion.long()], 1)[:, None]

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) in [-1, 1], T = 1 + k * w -> codes (B, 1, h + k, w, 1) int64."""
        self._check_video(x)
        return self._layout(self.image.encode(x[:, :, 0]), self.estimate_motion(x))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, 1, h + k, w, 1) -> video (B, C, 1 + k * w, h*f, w*f)."""
        if not isinstance(codes, Tensor) or codes.dim() != 5 or codes.shape[1] != 1 or codes.shape[-1] != 1:
            shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
            raise ValueError(f"GlobalMotionCodec.decode: codes must be shaped (B, 1, h + k, w, 1), got {shape}")
        b, _, hk, w, _ = codes.shape
        h = round(w / self.aspect)
        if hk < h:
            raise ValueError(f"GlobalMotionCodec.decode: a {hk}x{w} grid is lower than the first frame's {h}x{w}")
        first = self.image.decode(codes[:, 0, :h])  # (B, C, H, W)
        ids = codes[:, 0, h:, :, 0].reshape(b, -1)  # (B, k*w), frame order
        if ids.numel() and int(ids.min()) < 0:
            raise ValueError(f"GlobalMotionCodec.decode: motion codes must be >= 0, got {int(ids.min())}")
        # the codebook is shared with the first frame's codes, so a sampler may put a code >= levels**2 where a
        # motion step belongs: it decodes as no motion (the zero step)
        ids = torch.where(ids < self.levels**2, ids, torch.full_like(ids, self.levels**2 // 2))
        return self._render(first, ids)
