"""Media files of the first few samples of each eval task, for the HTML report: :class:`SampleSaver`."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from omnitok.io.audio import write_wav
from omnitok.io.image import save_image
from omnitok.io.video import save_video

__all__ = ["SampleSaver"]


class SampleSaver:
    """Writes PNG / WAV / MP4 files under ``folder`` (``None``: writes nothing and returns None for each path).
    ``n``: how many samples per task a task shows."""

    def __init__(self, folder: str | Path | None, n: int = 10, sample_rate: int = 16000) -> None:
        self.dir = Path(folder) if folder else None
        self.n = n
        self.sr = sample_rate

    def image(self, x: Tensor, name: str) -> str | None:
        """x: (C, H, W) in [-1, 1] -> ``<folder>/<name>.png``."""
        if self.dir is None:
            return None
        p = self.dir / f"{name}.png"
        save_image(x, p)
        return str(p)

    def audio(self, x: Tensor, name: str, sr: int | None = None) -> str | None:
        """x: (..., T) in [-1, 1] -> ``<folder>/<name>.wav``."""
        if self.dir is None:
            return None
        p = self.dir / f"{name}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(write_wav(x.detach().float().reshape(-1).cpu().numpy(), sr or self.sr, name=str(p)))
        return str(p)

    def video(self, frames: Tensor, name: str) -> str | None:
        """frames: (T, 3, H, W) in [-1, 1] -> ``<folder>/<name>.mp4``."""
        if self.dir is None:
            return None
        p = self.dir / f"{name}.mp4"
        save_video(frames.transpose(0, 1), p)  # (T, 3, H, W) -> (C, T, H, W)
        return str(p)
