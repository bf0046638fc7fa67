"""An outside judge for generated digits: a small CNN trained on the MNIST train split, cached on disk.

    clf = load_or_train()                    # trains once (~1 min on 2 CPU cores), then loads from the cache
    clf.test_accuracy                        # its own accuracy on digits/test (must be >= 0.98)
    labels = clf.predict(images)             # images (N, 3|1, H, W) in [-1, 1], any H, W

The judge is never trained on generated data: it sees real digits only (train + val splits, random shifts of up to
2 px, small rotations and scalings so a generated digit slightly off centre is still read). Cache: ``<cache root>/judges/digit-cnn-v2/``
(``config.json`` + ``model.safetensors`` + ``metrics.json``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DigitCNN", "DigitClassifier", "load_or_train", "prepare_digits", "train_classifier"]

VERSION = "digit-cnn-v2"
SIDE = 28


def prepare_digits(x: Tensor) -> Tensor:
    """(N, 3|1, H, W) or (N, H, W) in [-1, 1] -> (N, 1, 28, 28) greyscale in [-1, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images: expected (N, 1|3, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    x = x.float().mean(1, keepdim=True)
    if x.shape[-2:] != (SIDE, SIDE):
        x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(-1, 1)


class DigitCNN(nn.Module):
    """(N, 1, 28, 28) -> logits (N, 10). Three conv blocks and two linear layers (~0.1 M parameters,
    ~2.5 M multiply-adds per image, so it trains in about a minute on two CPU cores)."""

    def __init__(self, channels: int = 16, hidden: int = 128) -> None:
        super().__init__()
        self.config = {"channels": channels, "hidden": hidden}
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 2c, 7, 7)
            nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(),  # (N, 4c, 7, 7)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * c * 49, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _augment(x: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Random affine jitter: shifts of up to ``max_shift`` px, rotations of up to 10 degrees, scale 0.9-1.1
    (background -1 fills the gap). x (N, 1, H, W)."""
    if max_shift <= 0:
        return x
    N, _, H, W = x.shape
    u = lambda: torch.rand(N, generator=gen) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle, scale = u() * torch.pi / 18, 1 + 0.1 * u()
    tx, ty = u() * 2 * max_shift / W, u() * 2 * max_shift / H
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def train_classifier(images: Tensor, labels: Tensor, *, epochs: int = 8, batch_size: int = 128, lr: float = 2e-3,
                     max_shift: int = 2, seed: int = 0, progress: bool = True) -> DigitCNN:
    """Train :class:`DigitCNN` on images (N, 1|3, H, W) in [-1, 1] and labels (N,) in 0..9."""
    from tqdm.auto import tqdm

    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"images and labels must be non-empty and of equal length, got {len(images)}, {len(labels)}")
    x = prepare_digits(images)
    y = labels.long()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    bar = tqdm(total=steps, desc="digit judge", unit="step", disable=not progress, leave=False)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(_augment(x[idx], max_shift, gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


class DigitClassifier:
    """A trained :class:`DigitCNN` with ``predict`` / ``probs`` and its measured test accuracy."""

    def __init__(self, net: DigitCNN, test_accuracy: float | None = None, info: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.test_accuracy = test_accuracy
        self.info = dict(info or {})

    @torch.no_grad()
    def probs(self, images: Tensor, batch_size: int = 512) -> Tensor:
        """images (N, 1|3, H, W) in [-1, 1] -> class probabilities (N, 10)."""
        x = prepare_digits(images.cpu())
        out = [self.net(x[i : i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, 10)

    def predict(self, images: Tensor) -> Tensor:
        """images (N, 1|3, H, W) in [-1, 1] -> predicted digits (N,) long."""
        return self.probs(images).argmax(-1)

    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        if len(images) == 0:
            raise ValueError("accuracy: no images")
        return float((self.predict(images) == labels.long().cpu()).float().mean())

    def save(self, folder: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"version": VERSION, **self.net.config}, indent=2))
        (folder / "metrics.json").write_text(json.dumps({"test_accuracy": self.test_accuracy, **self.info},
                                                        indent=2))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> DigitClassifier:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            cfg = json.loads((folder / "config.json").read_text())
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{folder}: not a digit-classifier folder (config.json / metrics.json: {e})") from e
        if cfg.get("version") != VERSION:
            raise ValueError(f"{folder}: version {cfg.get('version')!r}, expected {VERSION!r}")
        net = DigitCNN(channels=int(cfg["channels"]), hidden=int(cfg["hidden"]))
        net.load_state_dict(load_file(str(folder / "model.safetensors")))
        acc = metrics.pop("test_accuracy", None)
        return cls(net, acc, metrics)


def _load_split(split: str, root: str | os.PathLike | None, limit: int | None) -> tuple[Tensor, Tensor]:
    from omnitok.data.dataset import ShardDataset

    xs, ys = [], []
    for i, item in enumerate(ShardDataset("digits", split, root=root, rank=0, world_size=1)):
        if limit is not None and i >= limit:
            break
        xs.append(item["image"])
        ys.append(int(item["label"]))
    if not xs:
        raise ValueError(f"digits/{split} is empty (run `omnitok data build digits`)")
    return torch.stack(xs), torch.tensor(ys)


def default_dir(root: str | os.PathLike | None = None) -> Path:
    from omnitok.data.paths import cache_root

    return cache_root(root) / "judges" / VERSION


def load_or_train(folder: str | os.PathLike | None = None, *, data_root: str | os.PathLike | None = None,
                  epochs: int = 8, limit: int | None = None, seed: int = 0, progress: bool = True,
                  min_accuracy: float = 0.98) -> DigitClassifier:
    """The cached judge (``folder``, default ``<cache root>/judges/digit-cnn-v2``), trained on digits/train of
    ``data_root`` when missing. Warns (does not fail) when its test accuracy is below ``min_accuracy``."""
    import warnings

    folder = Path(folder) if folder is not None else default_dir()
    if (folder / "model.safetensors").is_file():
        return DigitClassifier.load(folder)
    t0 = time.perf_counter()
    x, y = _load_split("train", data_root, limit)
    try:  # the val split is not used for anything else: more real digits for the judge
        xv, yv = _load_split("val", data_root, limit)
        x, y = torch.cat([x, xv]), torch.cat([y, yv])
    except ValueError:
        pass
    net = train_classifier(x, y, epochs=epochs, seed=seed, progress=progress)
    xt, yt = _load_split("test", data_root, None)
    clf = DigitClassifier(net)
    acc = clf.accuracy(xt, yt)
    clf.test_accuracy = acc
    clf.info = {"train_images": len(x), "test_images": len(xt), "epochs": epochs, "seed": seed,
                "train_seconds": round(time.perf_counter() - t0, 1)}
    clf.save(folder)
    if acc < min_accuracy:
        warnings.warn(f"digit judge: test accuracy {acc:.4f} < {min_accuracy} (trained on {len(x)} images)",
                      RuntimeWarning, stacklevel=2)
    return clf
