"""A supervised content loss for a speech codec: CTC (Graves et al., ICML 2006) from quantized latents
to characters, so the codes carry what was said rather than only how it sounded (the idea of CosyVoice's S3
tokens, arXiv 2407.05407, with characters in place of an ASR encoder).

    head = CTCHead(dim=64)
    targets, target_lengths = encode_transcripts(["three one four", "seven"])
    loss = ctc_loss(head(latents), frames, targets, target_lengths)   # latents (B, D, F), frames (B,) true lengths
    texts = greedy_decode(head(latents), frames)                      # best path: collapse repeats, drop blanks

Alphabet: lowercase ``a``-``z``, space and apostrophe; id 0 is the CTC blank, character ``i`` of ``ALPHABET`` is
id ``i + 1``. Transcripts are lowercased, runs of whitespace become one space, other characters are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ALPHABET",
    "BLANK",
    "CTCHead",
    "ctc_loss",
    "encode_transcripts",
    "frames_needed",
    "greedy_decode",
    "normalize_transcript",
]

ALPHABET = "abcdefghijklmnopqrstuvwxyz '"
BLANK = 0
_IDS = {c: i + 1 for i, c in enumerate(ALPHABET)}


def normalize_transcript(text: str) -> str:
    """Lowercase; whitespace runs -> one space; characters outside ``ALPHABET`` dropped; ends stripped."""
    text = re.sub(r"\s+", " ", text.lower().replace("\u2019", "'"))
    return re.sub(r" +", " ", "".join(c for c in text if c in _IDS)).strip()


def encode_transcripts(texts: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Transcripts -> (targets (sum of lengths,) long, concatenated; target_lengths (B,) long), normalised first."""
    ids = [[_IDS[c] for c in normalize_transcript(t)] for t in texts]
    flat = torch.tensor([i for row in ids for i in row], dtype=torch.long)
    return flat, torch.tensor([len(row) for row in ids], dtype=torch.long)


def frames_needed(text: str) -> int:
    """The fewest CTC frames that can emit ``text`` (normalised): one per character, plus a blank between repeats."""
    t = normalize_transcript(text)
    return len(t) + sum(a == b for a, b in zip(t, t[1:], strict=False))


class CTCHead(nn.Module):
    """Quantized latents (B, D, F) -> character logits (B, F, len(ALPHABET) + 1): three width-5 convolutions
    dilated 1, 2, 4 (29 frames, 0.58 s of context at 50 frames/s), GELU, and a per-frame linear map.

    Why this much context: trained alone on the codes of a reconstruction-only ``quickstart-audio`` codec (600
    steps), a single width-3 convolution stalls at CER 0.80 on 200 ``speech`` val clips while this stack reaches
    0.39 (a bidirectional GRU: 0.33); a 20 ms token cannot spell its letters alone.
    """

    def __init__(self, dim: int, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(dim if i == 0 else hidden, hidden, kernel_size=5, padding=2 * 2**i, dilation=2**i)
            for i in range(layers)
        )
        self.out = nn.Conv1d(hidden, len(ALPHABET) + 1, kernel_size=1)

    def forward(self, latents: Tensor) -> Tensor:
        x = latents  # (B, D, F)
        for conv in self.convs:
            x = F.gelu(conv(x))  # (B, hidden, F)
        return self.out(x).transpose(1, 2)  # (B, F, V)


def ctc_loss(logits: Tensor, frames: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """Mean over the batch of the CTC loss per target character (``reduction="mean"``), fp32.

    logits (B, F, V); frames (B,) the true frame count of each clip (padding after it is ignored); targets the
    concatenated ids of :func:`encode_transcripts`. Infeasible pairs (too few frames) contribute zero.
    """
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (F, B, V)
    return F.ctc_loss(
        log_probs,
        targets.to(logits.device),  # lengths may stay on the CPU
        frames.cpu(),
        target_lengths.cpu(),
        blank=BLANK,
        reduction="mean",
        zero_infinity=True,
    )


def greedy_decode(logits: Tensor, frames: Tensor) -> list[str]:
    """Best-path decoding of logits (B, F, V) over each clip's first ``frames[b]`` frames: the argmax per frame,
    repeats collapsed, blanks dropped."""
    best = logits.argmax(-1)  # (B, F)
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]  # first frame of each run
    valid = torch.arange(best.shape[1], device=best.device)[None] < frames.to(best.device)[:, None]
    keep = (new & (best != BLANK) & valid).cpu()
    best = best.cpu()
    return ["".join(ALPHABET[int(i) - 1] for i in best[b][keep[b]]) for b in range(best.shape[0])]
