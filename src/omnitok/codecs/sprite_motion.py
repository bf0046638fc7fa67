"""SpriteMotionCodec: the first frame's sprite cut out around its centre of mass and coded by an image codec at
that codec's own framing, its place as one code, every later frame as one global motion step.

Videos are float tensors (B, C, T, H, W) in [-1, 1], square frames of ``frame_size`` px, as every video codec
takes them. :class:`~omnitok.codecs.global_motion.GlobalMotionCodec` codes the whole first frame with an image
codec, so a 28 px digit anywhere in a 64 px frame costs 8 x 8 codes that an image codec trained on centred digits
reads badly (docs/results.md, "Video tokenizations"). Here the first frame is cut to a ``window`` px square whose
corner is the centre of mass of the frame's foreground (|frame - background|) less half a window, rounded to
whole pixels and kept inside the frame; the cut is resized to ``image_size`` px, the size the image codec was
trained at, and coded there (its h x w codes, e.g. 4 x 4 for the quickstart's f8 codec at 32 px). A 28 px window
resized to 32 px frames a digit as MNIST's 28 px images resized to 32 px are framed, so the codec (and an LM that
learnt its codes from digit images) sees the sprite as it saw digits.

The corner is one code, ``x * P + y`` with P = frame_size - window + 1 places per axis; later frames are the
decoded first frame (the window pasted at its corner on the background colour) moved by the closed-loop global
motion steps of :class:`GlobalMotionCodec` (``step`` px grid, at most ``max_step`` px per axis and frame), so the
rounding of the corner is undone by the first step.

Code layout, so that a clip is one (t, h, w) grid of the vocabulary: codes (B, 1, h + k, w, 1) for T = k * w
frames; rows 0..h-1 hold the window's codes, then the T cells [corner, step into frame 1, .., step into frame
T-1] row by row. An 8-frame clip with a 4 x 4 window codec is a 6 x 4 grid: 24 codes.

What it cannot code: more than one sprite, a sprite larger than the window, content entering the frame.

    image = load_codec("quickstart/codecs/image/codec")
    codec = SpriteMotionCodec.from_image_codec(image, window=28, image_size=32, frame_size=64, max_step=3.0)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from omnitok.codecs.global_motion import GlobalMotionCodec, _background
from omnitok.codecs.image import CodecOutput, check_float_batch

__all__ = ["SpriteMotionCodec"]


class SpriteMotionCodec(GlobalMotionCodec):
    """First frame: a ``window`` px cut around the sprite, resized to ``image_size`` px for the image codec
    (constructor arguments in ``image``), and its corner; later frames: global motion steps. Square frames of
    ``frame_size`` px."""

    modality = "video"

    def __init__(self, image: dict[str, Any], window: int, image_size: int, frame_size: int, step: float = 0.25,
                 max_step: float = 2.0) -> None:
        super().__init__(image, step=step, max_step=max_step)
        if not 0 < int(window) <= int(frame_size):
            raise ValueError(f"SpriteMotionCodec: need 0 < window <= frame_size, got window={window}, "
                             f"frame_size={frame_size}")
        self.window, self.image_size, self.frame_size = int(window), int(image_size), int(frame_size)
        self.grid = tuple(self.image.code_grid((self.image_size, self.image_size)))  # (h, w) of the window
        self.places = self.frame_size - self.window + 1  # corners per axis
        self.config = {"image": dict(self.image.config), "window": self.window, "image_size": self.image_size,
                       "frame_size": self.frame_size, "step": float(step), "max_step": float(max_step)}

    @property
    def codebook_size(self) -> int:
        return max(self.image.codebook_size, self.levels * self.levels, self.places * self.places)

    @property
    def image_rows(self) -> int:
        """Rows of the code grid that hold the image codec's codes (the window's h): a vocabulary built with
        ``share_image_ids`` gives them the image codec's ids."""
        return int(self.grid[0])

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, T, H, W) or (T, H, W), H = W = frame_size, T = k * w -> (1, h + k, w)."""
        if len(input_shape) not in (3, 4):
            raise ValueError(f"SpriteMotionCodec.code_grid: expected (C, T, H, W) or (T, H, W), "
                             f"got {tuple(input_shape)}")
        t, hh, ww = input_shape[-3:]
        if hh != self.frame_size or ww != self.frame_size:
            raise ValueError(f"SpriteMotionCodec: frames of {hh}x{ww} px; this codec was built for "
                             f"{self.frame_size}x{self.frame_size}")
        h, w = self.grid
        if t < 1 or t % w:
            raise ValueError(f"SpriteMotionCodec: {t} frames; expected T = k * {w} (the corner and T - 1 steps fill "
                             f"rows as wide as the window's {h}x{w} codes), e.g. {max(1, round(t / w)) * w}")
        return (1, h + t // w, w)

    # ----- the window ----------------------------------------------------------------------------------------
    def corners(self, frame: Tensor) -> Tensor:
        """(B, C, S, S) -> (B, 2) int64 top-left corners (x, y) of the window around each frame's sprite."""
        s = frame.shape[-1]
        weight = (frame.float() - _background(frame.float())[..., None, None]).abs().mean(1)  # (B, S, S)
        axis = torch.arange(s, dtype=torch.float32, device=frame.device) + 0.5  # pixel centres
        mass = weight.sum((1, 2))
        cx = (weight.sum(1) * axis).sum(1) / mass.clamp_min(1e-8)
        cy = (weight.sum(2) * axis).sum(1) / mass.clamp_min(1e-8)
        centre = torch.stack([cx, cy], 1)
        centre = torch.where(mass[:, None] > 0, centre, torch.full_like(centre, s / 2))  # an empty frame: the middle
        return (centre - self.window / 2).round().clamp(0, self.places - 1).long()

    def _cut(self, frame: Tensor, corner: Tensor) -> Tensor:
        """(B, C, S, S), corners (B, 2) -> windows resized to the image codec's size (B, C, image_size, image_size)."""
        n = self.window
        cuts = torch.stack([f[:, y : y + n, x : x + n] for f, (x, y) in zip(frame, corner.tolist())])
        return F.interpolate(cuts, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                             antialias=True)

    def _paste(self, window: Tensor, corner: Tensor) -> Tensor:
        """decoded windows (B, C, image_size, image_size), corners (B, 2) -> first frames (B, C, S, S) with the
        window's background colour around it."""
        n = self.window
        win = F.interpolate(window, size=(n, n), mode="bilinear", align_corners=False, antialias=True)
        bg = _background(win)  # (B, C)
        out = bg[:, :, None, None].expand(-1, -1, self.frame_size, self.frame_size).clone()
        for i, (x, y) in enumerate(corner.tolist()):
            out[i, :, y : y + n, x : x + n] = win[i]
        return out

    # ----- codec interface -----------------------------------------------------------------------------------
    def _check_video(self, x: Tensor) -> tuple[int, int]:
        check_float_batch(x, 5, self.in_channels, "SpriteMotionCodec", "(B, C, T, H, W)")
        _, h, w = self.code_grid(tuple(x.shape[1:]))
        return h, w

    def _codes(self, window_codes: Tensor, corner: Tensor, ids: Tensor) -> Tensor:
        """window codes (B, h, w, 1), corners (B, 2), steps (B, T-1) -> codes (B, 1, h + k, w, 1)."""
        b, _, w = window_codes.shape[:3]
        cells = torch.cat([(corner[:, 0] * self.places + corner[:, 1])[:, None], ids.long()], 1)  # (B, T)
        return torch.cat([window_codes.long(), cells.reshape(b, -1, w)[..., None]], 1)[:, None]

    def forward(self, x: Tensor) -> CodecOutput:
        """Reconstruction pass (the image codec's forward on the windows; corners and motion are searched)."""
        self._check_video(x)
        corner = self.corners(x[:, :, 0])
        out = self.image(self._cut(x[:, :, 0], corner))
        first = self._paste(out.recon, corner)
        with torch.no_grad():
            ids = self.estimate_motion(torch.cat([first[:, :, None], x[:, :, 1:]], 2))
        return CodecOutput(self._render(first, ids), self._codes(out.codes, corner, ids), out.loss, out.metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) in [-1, 1], T = k * w -> codes (B, 1, h + k, w, 1) int64. The steps are searched
        against the decoded first frame, so the decoder's frames follow the clip (closed loop)."""
        self._check_video(x)
        corner = self.corners(x[:, :, 0])
        window_codes = self.image.encode(self._cut(x[:, :, 0], corner))
        first = self._paste(self.image.decode(window_codes), corner)
        ids = self.estimate_motion(torch.cat([first[:, :, None], x[:, :, 1:]], 2))
        return self._codes(window_codes, corner, ids)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, 1, h + k, w, 1) -> video (B, C, k * w, frame_size, frame_size)."""
        h, w = self.grid
        if (not isinstance(codes, Tensor) or codes.dim() != 5 or codes.shape[1] != 1 or codes.shape[-1] != 1
                or codes.shape[3] != w or codes.shape[2] <= h):
            shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
            raise ValueError(f"SpriteMotionCodec.decode: codes must be shaped (B, 1, h + k, w, 1) with (h, w) = "
                             f"{(h, w)} and k >= 1, got {shape}")
        b = codes.shape[0]
        if int(codes.min()) < 0:
            raise ValueError(f"SpriteMotionCodec.decode: codes must be >= 0, got {int(codes.min())}")
        window = self.image.decode(codes[:, 0, :h].clamp_max(self.image.codebook_size - 1))
        cells = codes[:, 0, h:, :, 0].reshape(b, -1)  # (B, T): corner, then the steps in frame order
        # the vocabulary gives the video codec one range for window codes, corners and steps, so a sampler may put
        # a code out of a cell's range there: a window code is clamped to the image codec's last, a corner out of
        # range is the middle of the frame, a step out of range no motion
        middle = (self.places // 2) * self.places + self.places // 2
        corner_id = torch.where(cells[:, 0] < self.places**2, cells[:, 0], torch.full_like(cells[:, 0], middle))
        corner = torch.stack([corner_id // self.places, corner_id % self.places], 1)
        ids = cells[:, 1:]
        ids = torch.where(ids < self.levels**2, ids, torch.full_like(ids, self.levels**2 // 2))
        return self._render(self._paste(window, corner), ids)
