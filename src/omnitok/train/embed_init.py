"""Codebook-aware initialisation of the LM's token embeddings for media codes.

A freshly initialised LM treats the 4,096 codes of an image codec as 4,096 unrelated symbols and has to learn
from data that code 1,234 and code 1,235 (one FSQ level apart) draw nearly the same patch. This module starts
each media code's embedding row from the code's own latent vector in its codec, so codes that decode alike
start alike: the rows of one codebook level are random Fourier features of the standardised latents,

    e(k) = s * [sin(z_k W), cos(z_k W)]      z_k: latent of code k (D,), standardised per dimension;
                                             W ~ N(0, 1), (D, dim / 2); s sets the row std to the model's init

(a random-features approximation of a Gaussian kernel on the latents: e(k) . e(j) ~ exp(-|z_k - z_j|^2 / 2)).
For a residual / product quantizer each level is featurised on its own: level q's latent of code k is what
``codes_to_latents`` gives when only level q varies (centred, so the other levels' fixed codes cancel).

The model still sees integer ids only; this only chooses the starting point of some embedding rows. Text and
special rows keep the model's own initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["code_latents", "codebook_embedding_init"]


@torch.no_grad()
def code_latents(quantizer: torch.nn.Module, level: int) -> Tensor:
    """(K, D) latent of every code of one level of ``quantizer`` (centred over the K codes)."""
    n_q, k = int(quantizer.num_codebooks), int(quantizer.codebook_size)
    if not 0 <= level < n_q:
        raise ValueError(f"level {level} out of range for a quantizer with {n_q} codebooks")
    tensors = [*quantizer.parameters(), *quantizer.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    codes = torch.zeros(k, n_q, dtype=torch.long, device=device)
    codes[:, level] = torch.arange(k, device=device)
    lat = quantizer.codes_to_latents(codes).float().cpu()  # (K, D)
    return lat - lat.mean(0, keepdim=True)


@torch.no_grad()
def codebook_embedding_init(embed: Tensor, vocab: Vocabulary, *, std: float, seed: int = 0) -> dict[str, int]:
    """Overwrite the rows of ``embed`` (vocab_size, dim) that hold media codes; returns rows set per modality.

    Codecs without a ``quantizer`` attribute (or not loaded in ``vocab``) are left as they are.
    """
    if embed.dim() != 2 or embed.shape[0] < len(vocab):
        raise ValueError(f"embed: expected (>= {len(vocab)}, dim), got {tuple(embed.shape)}")
    dim = embed.shape[1]
    gen = torch.Generator().manual_seed(seed)
    done: dict[str, int] = {}
    for modality, codec in sorted(vocab.codecs.items()):
        quantizer = getattr(codec, "quantizer", None)
        if modality == "text" or quantizer is None:
            continue
        for level in range(int(quantizer.num_codebooks)):
            lo, hi = vocab.id_range(modality, level)
            z = code_latents(quantizer, level)[: hi - lo]  # the codec stays where it is
            z = z / z.std(0, keepdim=True).clamp_min(1e-6)  # (K, D) standardised
            w = torch.randn(z.shape[1], (dim + 1) // 2, generator=gen)
            proj = z @ w  # (K, dim/2)
            feats = torch.cat([proj.sin(), proj.cos()], dim=1)[:, :dim]  # (K, dim)
            feats = feats - feats.mean(0, keepdim=True)
            feats = feats * (std / feats.std().clamp_min(1e-6))
            # a codec whose id range is wider than its quantizer's codes (SpriteMotionCodec: corner and motion ids
            # beyond the image codes) keeps the model's own initialisation on the rows past them
            embed[lo : lo + len(feats)] = feats.to(embed.dtype).to(embed.device)
            done[modality] = done.get(modality, 0) + len(feats)
    return done
