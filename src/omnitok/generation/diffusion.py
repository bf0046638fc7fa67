"""Text -> image by diffusion: the sampling loop with classifier-free guidance, and the pipeline that turns prompts
into BPE ids and the denoiser's output into pictures.

    pipe = DiffusionPipeline.load("runs/diffusion/digits-latent/final")
    images, stats = pipe(["the digit seven"] * 4, sampler="ddim", steps=20, cfg_scale=3.0, seed=0)

Guidance (Ho & Salimans, arXiv 2207.12598) is :func:`omnitok.generation.cfg.guide`, the same function the token
sampler uses: each step runs the conditional and the unconditional (empty caption) rows in ONE batched forward,
``[cond; uncond]``, and mixes the model outputs ``u + s (c - u)``; at ``s = 1`` the unconditional half is skipped.

A model folder holds ``config.json`` + ``model.safetensors`` (:class:`omnitok.diffusion.model.DiffusionModel`) and
``text_codec/`` (the BPE that made its ids; or ``text_clip/``, an ``omnitok.align`` model whose frozen text tower
gives the condition); latent models also ``image_codec/``, whose decoder turns latents back into
pixels after its own quantizer (LDM's VQ-regularised variant absorbs quantisation into the decoder, Rombach et al.,
arXiv 2112.10752, sec. 3). A training checkpoint finds both folders in its run folder (two levels up).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnitok._io import model_folder
from omnitok.codecs.base import load_codec
from omnitok.diffusion import make_scheduler
from omnitok.diffusion.model import DiffusionModel
from omnitok.diffusion.text import EmbeddingConditioner, pad_ids
from omnitok.generation.cfg import guide

__all__ = ["DiffusionPipeline", "find_diffusion_folder", "image_grid", "sample"]


@torch.no_grad()
def sample(model: DiffusionModel, ids: Tensor, lengths: Tensor, *, sampler: str = "ddim", steps: int = 20,
           cfg_scale: float = 1.0, eta: float = 0.0, generator: torch.Generator | None = None,
           x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """ids (B, L), lengths (B,) -> samples (B, C, H, W) in the denoiser's space (scaled latents or pixels).

    sampler: ``ddpm``, ``ddim`` (with ``eta``) or ``euler``; the model's scheduler config is shared by all three."""
    kwargs = {"eta": eta} if sampler == "ddim" else {}
    sched = make_scheduler(sampler, model.scheduler_config, **kwargs)
    dev = next(model.parameters()).device
    B = ids.shape[0]
    ids, lengths = ids.to(dev), lengths.to(dev)
    guided = float(cfg_scale) != 1.0
    if guided:  # [cond; uncond]: the unconditional rows are the empty caption (length 0)
        ids, lengths = torch.cat([ids, ids]), torch.cat([lengths, torch.zeros_like(lengths)])
    tokens, mask, pooled = model.encode_text(ids, lengths)  # once, reused by every step
    if x_T is None:
        x_T = torch.randn((B, *model.sample_shape), generator=generator,
                          device=generator.device if generator is not None else "cpu")
    x = x_T.to(dev)
    from tqdm import tqdm

    for t in tqdm(sched.set_timesteps(steps), desc=f"{sampler} {steps} steps", disable=not progress,
                  leave=False, file=sys.stderr):
        x_in = torch.cat([x, x]) if guided else x
        out = model.denoise(x_in, t.to(dev).expand(x_in.shape[0]), tokens, mask, pooled)  # (B or 2B, C, H, W)
        out = guide(out, cfg_scale).to(x.dtype) if guided else out
        x = sched.step(out, t, x, generator=generator).prev_sample
    return x


def image_grid(images: Tensor, cols: int | None = None, pad: int = 2) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> one (C, rows * (H + pad), cols * (W + pad)) image on white."""
    n, c, h, w = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = torch.ones(c, rows * (h + pad), cols * (w + pad))
    for i in range(n):
        r, q = divmod(i, cols)
        grid[:, r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = images[i].float().cpu()
    return grid.clamp(-1, 1)


def find_diffusion_folder(path: str | Path) -> Path:
    """A model folder, a training checkpoint folder or a run folder (its ``final/``, else its latest checkpoint)."""
    return model_folder(path, "diffusion model")


def _beside(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder.parent.parent / name):
        if (cand / "config.json").is_file():
            return cand
    return None


#: prompts -> unit-length text embeddings (B, E): what a model conditioned on CLIP text embeddings is handed
TextEmbedder = Callable[[list[str]], Tensor]


class DiffusionPipeline:
    """A :class:`DiffusionModel` with its text encoder and, for latent models, its image codec.

    ``text_codec``: for a model conditioned on ids, a text codec (``encode(prompts) -> ids``); for one conditioned on
    CLIP text embeddings, a :data:`TextEmbedder` (``omnitok.eval.diffusion.load_pipeline`` builds one from the
    folder's ``text_clip/``; the trainer hands its own)."""

    def __init__(self, model: DiffusionModel, text_codec: Any, image_codec: Any | None = None) -> None:
        if model.latent is not None and image_codec is None:
            raise ValueError("a latent diffusion model needs its image codec to decode latents")
        self.model, self.text_codec, self.image_codec = model.eval(), text_codec, image_codec

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu",
             text_embedder: Callable[[Path, str | torch.device], TextEmbedder] | None = None) -> DiffusionPipeline:
        """A diffusion model folder (or its run folder) with the text codec / image codec folders beside it.
        ``text_embedder(text_clip_folder, device)``: opens the CLIP text tower of a model conditioned on its
        embeddings (``omnitok.eval.diffusion.load_pipeline`` passes one)."""
        folder = find_diffusion_folder(path)
        model = DiffusionModel.from_pretrained(folder, map_location=device)
        if model.config["text"].get("kind") == "embedding":  # conditioned on a frozen CLIP text tower
            clip_dir = _beside(folder, "text_clip")
            if clip_dir is None:
                raise ValueError(f"{folder}: conditioned on CLIP text embeddings, but no text_clip/ folder here or "
                                 "in its run folder")
            if text_embedder is None:
                raise ValueError(f"{folder}: conditioned on CLIP text embeddings; load it with "
                                 "omnitok.eval.diffusion.load_pipeline (which opens its text_clip/ tower)")
            text: Any = text_embedder(clip_dir, device)
        else:
            text_dir = _beside(folder, "text_codec")
            if text_dir is None:
                raise ValueError(f"{folder}: no text_codec/ folder here or in its run folder")
            text = load_codec(text_dir)
        image_codec = None
        if model.latent is not None:
            image_dir = _beside(folder, "image_codec")
            if image_dir is None:
                raise ValueError(f"{folder}: a latent model, but no image_codec/ folder here or in its run folder")
            image_codec = load_codec(image_dir, map_location=str(device)).eval()
        return cls(model, text, image_codec)

    def tokenize(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """prompts -> ids (B, L), lengths (B,) for the text encoder (truncated to its max_len); with a CLIP text
        tower: its unit-length embeddings (B, 1, E) and lengths of 1."""
        if isinstance(self.model.text, EmbeddingConditioner):
            emb = self.text_codec(list(prompts))  # (B, E)
            return emb[:, None], torch.ones(len(prompts), dtype=torch.long)
        return pad_ids(self.text_codec.encode(list(prompts)), self.model.text.max_len)

    @torch.no_grad()
    def to_images(self, x: Tensor) -> Tensor:
        """The denoiser's output -> images (B, C, H, W) in [-1, 1]."""
        lat = self.model.latent
        if lat is None:
            return x.clamp(-1, 1)
        c = self.image_codec
        z = x / float(lat["scale"]) + float(lat["shift"])  # back to the codec's pre-quantization latents
        q = c.quantizer.forward_channel_first(z.to(next(c.parameters()).device)).latents
        return c.decoder(c.post_quant_conv(q)).clamp(-1, 1)

    def __call__(self, prompts: Sequence[str], *, sampler: str = "ddim", steps: int = 20, cfg_scale: float = 3.0,
                 eta: float = 0.0, seed: int = 0, batch_size: int = 50,
                 progress: bool = False) -> tuple[Tensor, dict[str, Any]]:
        """prompts -> (images (N, C, H, W) in [-1, 1] on the CPU, stats: seconds, seconds per image, forwards)."""
        gen = torch.Generator().manual_seed(int(seed))
        out: list[Tensor] = []
        t0 = time.perf_counter()
        for i in range(0, len(prompts), batch_size):
            ids, lengths = self.tokenize(prompts[i : i + batch_size])
            x = sample(self.model, ids, lengths, sampler=sampler, steps=steps, cfg_scale=cfg_scale, eta=eta,
                       generator=gen, progress=progress)
            out.append(self.to_images(x).cpu())
        seconds = time.perf_counter() - t0
        n = len(prompts)
        return torch.cat(out), {"seconds": seconds, "seconds_per_image": seconds / max(n, 1), "images": n,
                                "steps": steps, "sampler": sampler, "cfg_scale": cfg_scale,
                                "forwards": steps * math.ceil(n / batch_size)}
