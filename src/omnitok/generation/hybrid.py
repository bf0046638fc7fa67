"""Generation with the Transfusion hybrid (``omnitok.model.transfusion``): text -> image by denoising patches inside
the one transformer, and image -> text by next-token decoding conditioned on clean latents.

    pipe = HybridPipeline.load("runs/transfusion/digits")
    images, stats = pipe.text_to_image(["the digit seven"] * 4, steps=20, cfg_scale=3.0, seed=0)
    captions, stats = pipe.image_to_text(images)

Text -> image: the prompt ``<|bos|> <|begin_text|> ... <|end_text|> <|begin_image|>`` (left-padded), then N noise
patches after the begin marker. The first forward runs prompt + patches and leaves the prompt's keys and values in the
KV cache (:class:`omnitok.model.kv_cache.StaticKVCache`); every later denoising step runs only the N patch positions
against the cached prompt, in the same slots (``rewind`` after each forward), so a step costs N positions, not the
whole sequence. The image block is one bidirectional segment; the prompt stays causal. The scheduler (DDIM, DDPM or
flow Euler, :mod:`omnitok.diffusion`, one shared config) turns each output into the next, less noisy patches.
Guidance (:func:`omnitok.generation.cfg.guide`, Ho & Salimans, arXiv 2207.12598): the unconditional rows are the
image without a caption (``<|bos|> <|begin_image|>``: the layout of image -> text documents and of dropped
captions), in the same batch. The latents are then scaled back, quantized by the codec (as the latent diffusion
models are: the decoder was trained on quantized latents) and decoded to pixels. The end marker is implied: nothing
after the image is generated here.

Image -> text: ``<|bos|> <|begin_image|> [clean patches at t = 0] <|end_image|> <|begin_text|>``, then greedy
next-token decoding with the KV cache, restricted to text ids and ``<|end_text|>``, until every row has ended.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnitok._io import model_folder
from omnitok.diffusion import make_scheduler
from omnitok.generation.cfg import guide
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transfusion import TransfusionModel

__all__ = ["HybridPipeline", "caption_ids", "find_hybrid_folder", "hybrid_document", "hybrid_text", "sample_patches"]


def hybrid_document(vocab: Any, text: Sequence[int] | None, num_patches: int, patch_id: int,
                    image_first: bool) -> tuple[list[int], int]:
    """The one layout of a hybrid document -> (ids, index of the first patch).

    caption first (text -> image): ``<|bos|> [text] <|begin_image|> patch x N <|end_image|> <|eos|>``;
    image first (image -> text, and an image alone when ``text`` is None):
    ``<|bos|> <|begin_image|> patch x N <|end_image|> [text] <|eos|>``. ``text`` is a text segment with its own
    markers (``<|begin_text|> ... <|end_text|>``); every patch position carries ``patch_id``."""
    v = vocab
    body = list(text or [])
    image = [v.begin_id("image"), *([patch_id] * num_patches), v.end_id("image")]
    if image_first:
        return [v.bos_id, *image, *body, v.eos_id], 2
    return [v.bos_id, *body, *image, v.eos_id], 2 + len(body)


def hybrid_text(vocab: Any, caption: str) -> list[int]:
    """A caption -> its text segment ``<|begin_text|> ... <|end_text|>`` in the vocabulary's ids."""
    from omnitok.vocab.document import Document, Text

    return vocab.encode(Document([Text(caption)])).tolist()[1:-1]  # drop <|bos|> and <|eos|>


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[Tensor, Tensor]:
    """rows of ids -> ids (B, P) left-padded with ``pad``, mask (B, P) bool (False on padding)."""
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), P, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, P - len(r):] = torch.tensor(list(r), dtype=torch.long)
        mask[i, P - len(r):] = True
    return ids, mask


@torch.no_grad()
def sample_patches(model: TransfusionModel, ids: Tensor, mask: Tensor, *, steps: int = 20, sampler: str = "ddim",
                   cfg_scale: float = 1.0, eta: float = 0.0, generator: torch.Generator | None = None,
                   x_T: Tensor | None = None, use_cache: bool = True,
                   progress: bool = False) -> tuple[Tensor, dict[str, Any]]:
    """ids, mask (R, P): left-padded prompts that end with ``<|begin_image|>``; with ``cfg_scale != 1`` the rows are
    [cond; uncond] (R = 2B). Returns (patches (B, N, P_dim) in the model's scaled latent space, stats).

    ``use_cache=False`` runs prompt + patches through the model at every step (the reference the tests compare
    against); the default caches the prompt after the first forward."""
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    hc = model.config
    R, P = ids.shape
    guided = float(cfg_scale) != 1.0
    B = R // 2 if guided else R
    N, D = hc.num_patches, hc.patch_dim
    ids, mask = ids.to(dev), mask.to(device=dev, dtype=torch.bool)
    sched = make_scheduler(sampler, hc.scheduler, **({"eta": eta} if sampler == "ddim" else {}))
    if x_T is None:
        x_T = torch.randn((B, N, D), generator=generator, device=generator.device if generator is not None else "cpu")
    x = x_T.to(dev).float()
    block = torch.full((R, N), hc.patch_id, dtype=torch.long, device=dev)
    ones = torch.ones(R, N, dtype=torch.bool, device=dev)
    real = mask.long().sum(1)  # (R,) prompt lengths
    pos_prompt = (mask.long().cumsum(1) - 1).clamp(min=0)  # (R, P)
    pos_block = real[:, None] + torch.arange(N, device=dev)  # (R, N): the patches continue each prompt
    seg_full = torch.cat([torch.full((R, P), -1, dtype=torch.long, device=dev),
                          torch.zeros(R, N, dtype=torch.long, device=dev)], 1)  # (R, P + N)
    img_full = torch.cat([torch.zeros(R, P, dtype=torch.bool, device=dev), ones], 1)  # (R, P + N)
    cache = StaticKVCache(model.transformer, R, max_len=P + N) if use_cache else None
    from tqdm import tqdm

    timesteps = sched.set_timesteps(int(steps))
    forwards = 0
    for k, t in enumerate(tqdm(timesteps, desc=f"hybrid {sampler} {steps} steps", disable=not progress,
                               leave=False, file=sys.stderr)):
        x_in = torch.cat([x, x]) if guided else x  # (R, N, D)
        tt = t.to(dev).expand(R)
        if cache is not None and k > 0:  # the prompt is cached: only the patches, in the same slots
            out = model(block, ones, x_in, tt, position_ids=pos_block, segment_ids=seg_full[:, P:],
                        kv_cache=cache).image
            cache.rewind(N)
        else:
            seq = torch.cat([ids, block], 1)  # (R, P + N)
            pos = torch.cat([pos_prompt, pos_block], 1)
            if cache is not None:
                cache.reset()
                out = model(seq, img_full, x_in, tt, position_ids=pos, segment_ids=seg_full,
                            attention_mask=torch.cat([mask, ones], 1), kv_cache=cache).image
                cache.rewind(N)
            else:
                docs = torch.where(torch.cat([mask, ones], 1), 0, -1)  # left padding is its own document
                out = model(seq, img_full, x_in, tt, position_ids=pos, document_ids=docs, segment_ids=seg_full).image
        forwards += 1
        out = guide(out, cfg_scale) if guided else out.float()  # (B, N, D)
        x = sched.step(out, t, x, generator=generator).prev_sample
    return x, {"forwards": forwards, "seconds": time.perf_counter() - t0, "steps": int(steps)}


@torch.no_grad()
def caption_ids(model: TransfusionModel, prompt: Tensor, image_mask: Tensor, patches: Tensor, allowed: Tensor,
                end_id: int, max_new_tokens: int = 16) -> tuple[list[list[int]], dict[str, Any]]:
    """prompt (B, T) ids whose image positions (``image_mask``) hold clean patches (B, N, P_dim); greedy next-token
    decoding over the ``allowed`` ids (a (V,) bool mask) until ``end_id`` or ``max_new_tokens``.
    Returns each row's new ids (without ``end_id``) and stats (forwards, seconds)."""
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    B, T = prompt.shape
    cache = StaticKVCache(model.transformer, B, max_len=T + max_new_tokens)
    t = torch.zeros(B, dtype=torch.long, device=dev)  # clean latents: the lowest training timestep
    last = torch.zeros(B, T, dtype=torch.bool, device=dev)
    last[:, -1] = True
    out = model(prompt.to(dev), image_mask.to(dev), patches.to(dev), t, text_mask=last, kv_cache=cache)
    bias = torch.where(allowed.to(dev), 0.0, float("-inf"))  # (V,)
    logits = out.logits  # (B, V)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    rows: list[list[int]] = [[] for _ in range(B)]
    forwards = 1
    for _ in range(max_new_tokens):
        nxt = (logits.float() + bias).argmax(-1)  # (B,)
        for i in range(B):
            if not done[i] and int(nxt[i]) != end_id:
                rows[i].append(int(nxt[i]))
        done |= nxt == end_id
        if bool(done.all()):
            break
        logits = cache.decode_step(nxt[:, None])[:, -1]  # (B, V)
        forwards += 1
    return rows, {"forwards": forwards, "seconds": time.perf_counter() - t0}


def find_hybrid_folder(path: str | Path) -> Path:
    """A model folder, a training checkpoint folder or a run folder (its ``final/``, else its latest checkpoint)."""
    return model_folder(path, "Transfusion model")


def _beside(folder: Path, name: str, marker: str) -> Path | None:
    for cand in (folder / name, folder.parent.parent / name, folder.parent / name):
        if (cand / marker).is_file():
            return cand
    return None


class HybridPipeline:
    """A :class:`TransfusionModel` with its vocabulary (text ids and markers) and its image codec (latents <-> pixels)."""

    def __init__(self, model: TransfusionModel, vocab: Any, image_codec: Any) -> None:
        self.model, self.vocab, self.image_codec = model.eval(), vocab, image_codec.eval()
        hc = model.config
        if hc.patch_id >= len(vocab) or len(vocab) != model.model_config.vocab_size:
            raise ValueError(f"the model's vocabulary size {model.model_config.vocab_size} and patch id "
                             f"{hc.patch_id} do not fit this vocabulary of {len(vocab)} ids")

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> HybridPipeline:
        """A model folder (or a checkpoint / run folder) with ``vocab/`` and ``image_codec/`` beside it or inside."""
        from omnitok.codecs.base import load_codec
        from omnitok.vocab.vocabulary import Vocabulary

        folder = find_hybrid_folder(path)
        if folder.parent.name == "checkpoints":  # a training checkpoint: the EMA weights, the model's configs
            model = _from_checkpoint(folder, device)
        else:
            model = TransfusionModel.from_pretrained(folder, map_location=device)
        vocab_dir = _beside(folder, "vocab", "vocab.json")
        codec_dir = _beside(folder, "image_codec", "config.json")
        if vocab_dir is None or codec_dir is None:
            raise ValueError(f"{folder}: a Transfusion model needs vocab/ and image_codec/ beside it (or in its run "
                             f"folder); found vocab: {vocab_dir}, image_codec: {codec_dir}")
        vocab = Vocabulary.load(vocab_dir, {"text": vocab_dir / "codecs" / "text"}, load_codecs=False)  # text only
        return cls(model, vocab, load_codec(codec_dir, map_location=str(device)))

    # ----- ids -----------------------------------------------------------------------------------------------------
    def text_ids(self, text: str) -> list[int]:
        return hybrid_text(self.vocab, text)

    def prompt(self, text: str | None) -> list[int]:
        """The text -> image prompt up to ``<|begin_image|>`` (None: no caption, the unconditional row)."""
        hc = self.model.config
        ids, start = hybrid_document(self.vocab, self.text_ids(text) if text is not None else None, hc.num_patches,
                                     hc.patch_id, image_first=text is None)
        return ids[:start]

    # ----- latents <-> pixels ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) in [-1, 1] -> scaled patches (B, N, P_dim), what the model sees."""
        lat = self.model.config.latent
        c = self.image_codec
        dev = next(c.parameters()).device
        z = c.encode_latents(images.to(dev).float())  # (B, C, h, w) before quantization
        return self.model.patchify((z - float(lat["shift"])) * float(lat["scale"]))

    @torch.no_grad()
    def image_side(self) -> int:
        """The pixel side the codec maps to the model's latent grid (what ``encode`` takes)."""
        c = self.image_codec
        dev = next(c.parameters()).device
        for side in (8, 16, 32, 64, 128, 256):
            h = c.encode_latents(torch.zeros(1, int(c.config.get("in_channels", 3)), side, side, device=dev)).shape[-1]
            if h == self.model.config.latent_size:
                return side
        raise ValueError(f"no image side up to 256 px gives this codec a {self.model.config.latent_size}-wide latent "
                         "grid")

    @torch.no_grad()
    def decode(self, patches: Tensor) -> Tensor:
        """scaled patches (B, N, P_dim) -> images (B, 3, H, W) in [-1, 1] through the codec's quantizer and decoder."""
        lat = self.model.config.latent
        c = self.image_codec
        z = self.model.unpatchify(patches) / float(lat["scale"]) + float(lat["shift"])
        q = c.quantizer.forward_channel_first(z.to(next(c.parameters()).device)).latents
        return c.decoder(c.post_quant_conv(q)).clamp(-1, 1)

    # ----- tasks -----------------------------------------------------------------------------------------------
    def text_to_image(self, prompts: Sequence[str], *, steps: int = 20, sampler: str = "ddim", cfg_scale: float = 3.0,
                      eta: float = 0.0, seed: int = 0, batch_size: int = 50, use_cache: bool = True,
                      progress: bool = False) -> tuple[Tensor, dict[str, Any]]:
        """prompts -> (images (B, 3, H, W) in [-1, 1] on the CPU, stats: seconds, seconds_per_image, forwards)."""
        gen = torch.Generator().manual_seed(int(seed))
        out: list[Tensor] = []
        forwards = 0
        t0 = time.perf_counter()
        for i in range(0, len(prompts), batch_size):
            chunk = list(prompts[i : i + batch_size])
            rows = [self.prompt(p) for p in chunk]
            if float(cfg_scale) != 1.0:
                rows += [self.prompt(None)] * len(chunk)
            ids, mask = _left_pad(rows, self.vocab.pad_id)
            x, st = sample_patches(self.model, ids, mask, steps=steps, sampler=sampler, cfg_scale=cfg_scale, eta=eta,
                                   generator=gen, use_cache=use_cache, progress=progress)
            forwards += st["forwards"]
            out.append(self.decode(x).cpu())
        seconds = time.perf_counter() - t0
        n = len(prompts)
        return torch.cat(out), {"seconds": seconds, "seconds_per_image": seconds / max(n, 1), "images": n,
                                "steps": steps, "sampler": sampler, "cfg_scale": cfg_scale,
                                "forwards": forwards, "forwards_per_image": steps}

    def image_to_text(self, images: Tensor, *, max_new_tokens: int = 16,
                      batch_size: int = 50) -> tuple[list[str], dict[str, Any]]:
        """images (B, 3, H, W) in [-1, 1] -> (captions, stats: seconds, seconds_per_image, forwards)."""
        v, hc = self.vocab, self.model.config
        lo, hi = v.id_range("text")
        allowed = torch.zeros(len(v), dtype=torch.bool)
        allowed[lo:hi] = True
        allowed[v.end_id("text")] = True
        doc, start = hybrid_document(v, None, hc.num_patches, hc.patch_id, image_first=True)
        layout = torch.tensor(doc[:-1] + [v.begin_id("text")])  # ... <|end_image|> <|begin_text|>
        img = torch.zeros(len(layout), dtype=torch.bool)
        img[start : start + hc.num_patches] = True
        caps: list[str] = []
        forwards = 0
        t0 = time.perf_counter()
        for i in range(0, len(images), batch_size):
            x = self.encode(images[i : i + batch_size])  # (b, N, P)
            b = x.shape[0]
            rows, st = caption_ids(self.model, layout.expand(b, -1), img.expand(b, -1), x, allowed,
                                   v.end_id("text"), max_new_tokens)
            forwards += st["forwards"]
            caps += [self.decode_text(r) for r in rows]
        seconds = time.perf_counter() - t0
        return caps, {"seconds": seconds, "seconds_per_image": seconds / max(len(images), 1), "forwards": forwards}

    def decode_text(self, ids: Sequence[int]) -> str:
        """Text ids (without markers) -> the string."""
        v = self.vocab
        doc = v.decode([v.bos_id, v.begin_id("text"), *ids, v.end_id("text"), v.eos_id], data=True)
        return "".join(seg.text or "" for seg in doc.segments)


def _from_checkpoint(folder: Path, device: str | torch.device) -> TransfusionModel:
    """A training checkpoint folder -> the model with its EMA weights."""
    from omnitok._io import load_safetensors, read_json
    from omnitok.model.config import ModelConfig
    from omnitok.model.transfusion import TransfusionConfig

    raw = read_json(folder / "config.json")
    model = TransfusionModel(ModelConfig.from_dict(raw["transformer"]), TransfusionConfig.from_dict(raw["hybrid"]))
    state = load_safetensors(folder / "model.safetensors")
    model.load_saved_state({k[4:]: t for k, t in state.items() if k.startswith("ema.")}, str(folder))
    return model.to(device).eval()
