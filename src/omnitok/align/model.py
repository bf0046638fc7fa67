"""``AlignModel``: a text tower and an image and / or audio tower projected into one L2-normalised space.

CLIP (Radford et al. 2021, arXiv 2103.00020) pairs images with text; CLAP (Elizalde et al. 2022, arXiv
2206.04769) pairs audio with text the same way. One text tower serves both pairs; each pair has its own learnable
inverse temperature (``logit_scale``, stored as a log, initialised to 1/0.07 and clamped to at most 100 as in
CLIP), and for the SigLIP loss a learnable bias.

The model reads ids, pixels and waveforms; its ``tokenizer`` (the project's byte-level BPE text codec, the same
``tokenizer.json``) turns strings into ids for ``omnitok.align.api.encode_text``. A folder holds ``config.json``,
``model.safetensors`` and ``tokenizer.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok._io import (
    CheckpointError,
    fsync_replace,
    load_safetensors,
    read_json,
    sha256_file,
    write_json_atomic,
)
from omnitok.align.audio_encoder import AudioEncoder
from omnitok.align.image_encoder import ConvImageEncoder
from omnitok.align.text_encoder import TextEncoder

__all__ = ["PAIRS", "AlignConfig", "AlignModel", "AudioTowerConfig", "BPETokenizer", "ImageTowerConfig",
           "TextTowerConfig"]

CONFIG_NAME, WEIGHTS_NAME, TOKENIZER_NAME = "config.json", "model.safetensors", "tokenizer.json"
PAIRS = ("image", "audio")  # each pairs with text
LOSSES = ("clip", "siglip")


@dataclass
class TextTowerConfig:
    dim: int = 128
    n_layer: int = 2
    n_head: int = 4
    max_len: int = 32  # BPE ids; longer texts are cut


@dataclass
class ImageTowerConfig:
    image_size: int = 32  # pixels are resized to this square side
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # one stride-2 stage each


@dataclass
class AudioTowerConfig:
    sample_rate: int = 16000
    n_mels: int = 64
    dim: int = 128
    n_layer: int = 2
    n_head: int = 4
    max_seconds: float = 4.0  # longer clips keep their beginning
    n_conv: int = 2  # stride-2 convolutions after the log-mel (100 frames/s -> 100 / 2^n_conv)


@dataclass
class AlignConfig:
    vocab_size: int  # the text codec's id range
    embed_dim: int = 128
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    image: ImageTowerConfig | None = None
    audio: AudioTowerConfig | None = None
    loss: str = "clip"  # clip (softmax InfoNCE) | siglip (pairwise sigmoid): which scale / bias initialisation
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlignConfig:
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown align model keys {unknown}; expected some of {sorted(names)}")
        towers = {"text": TextTowerConfig, "image": ImageTowerConfig, "audio": AudioTowerConfig}
        for key, tower in towers.items():
            if isinstance(d.get(key), dict):
                sub = d[key]
                bad = sorted(set(sub) - {f.name for f in dataclasses.fields(tower)})
                if bad:
                    raise ValueError(f"unknown {key} tower keys {bad}")
                d[key] = tower(**sub)
        cfg = cls(**d)
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {cfg.loss!r}")
        if cfg.image is None and cfg.audio is None:
            raise ValueError("an align model needs an image tower, an audio tower or both")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class BPETokenizer:
    """Strings -> BPE ids with the text codec's ``tokenizer.json`` (exactly ``TextCodec.encode``'s ids)."""

    def __init__(self, tokenizer_json: str) -> None:
        import tokenizers

        self.json = tokenizer_json
        self.sha256 = hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest()
        self._tok = tokenizers.Tokenizer.from_str(tokenizer_json)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]


class AlignModel(nn.Module):
    """Towers + per-pair temperature; ``embed_*`` return L2-normalised (B, embed_dim) embeddings."""

    def __init__(self, config: AlignConfig, tokenizer: BPETokenizer | None = None) -> None:
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        self.info: dict[str, Any] = {}  # config.json of the folder it was loaded from
        t = config.text
        self.text = TextEncoder(config.vocab_size, config.embed_dim, t.dim, t.n_layer, t.n_head, t.max_len)
        self.image = (ConvImageEncoder(config.embed_dim, config.image.widths, config.image.image_size)
                      if config.image is not None else None)
        a = config.audio
        self.audio = (AudioEncoder(config.embed_dim, a.sample_rate, a.n_mels, a.dim, a.n_layer, a.n_head,
                                   a.max_seconds, a.n_conv) if a is not None else None)
        init = math.log(1 / config.init_temperature) if config.loss == "clip" else math.log(10.0)
        self.logit_scale = nn.ParameterDict({p: nn.Parameter(torch.tensor(init)) for p in self.pairs})
        self.logit_bias = nn.ParameterDict({p: nn.Parameter(torch.tensor(-10.0)) for p in self.pairs
                                            if config.loss == "siglip"})

    @property
    def pairs(self) -> list[str]:
        """The media towers this model has, each paired with text: a subset of ("image", "audio")."""
        return [p for p in PAIRS if getattr(self.config, p) is not None]

    # ----- embeddings ---------------------------------------------------------------------------------------
    def embed_text(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return F.normalize(self.text(ids, lengths), dim=-1)

    def embed_image(self, pixels: Tensor) -> Tensor:
        if self.image is None:
            raise ValueError("this align model has no image tower")
        return F.normalize(self.image(pixels), dim=-1)

    def embed_audio(self, wave: Tensor, lengths: Tensor) -> Tensor:
        if self.audio is None:
            raise ValueError("this align model has no audio tower")
        return F.normalize(self.audio(wave, lengths), dim=-1)

    # ----- temperature --------------------------------------------------------------------------------------
    def scale(self, pair: str) -> Tensor:
        """The inverse temperature of ``pair``, exp of the stored log, never above ``max_logit_scale``."""
        return self.logit_scale[pair].clamp(max=math.log(self.config.max_logit_scale)).exp()

    def bias(self, pair: str) -> Tensor:
        return self.logit_bias[pair]

    @torch.no_grad()
    def clamp_logit_scales_(self) -> None:
        """Clamp the stored log-scales to [0, log(max_logit_scale)] in place (after each optimizer step, as CLIP)."""
        for p in self.logit_scale.values():
            p.clamp_(0.0, math.log(self.config.max_logit_scale))

    # ----- folders ------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        """Write ``model.safetensors``, ``tokenizer.json`` and ``config.json`` (with both files' sha256)."""
        from safetensors.torch import save_file

        if self.tokenizer is None:
            raise ValueError("save_pretrained needs the model's tokenizer (AlignModel(config, tokenizer))")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "model_class": "AlignModel"})
        digest = sha256_file(tmp)
        fsync_replace(tmp, directory / WEIGHTS_NAME)
        tmp = directory / (TOKENIZER_NAME + ".tmp")
        tmp.write_text(self.tokenizer.json, encoding="utf-8")
        fsync_replace(tmp, directory / TOKENIZER_NAME)
        cfg = {"model_class": "AlignModel", "format_version": 1, "model": self.config.to_dict(),
               "weights_sha256": digest, "tokenizer_sha256": self.tokenizer.sha256, **(extra or {})}
        write_json_atomic(directory / CONFIG_NAME, cfg)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                        verify: bool = True) -> AlignModel:
        """Load a folder written by :meth:`save_pretrained`; a wrong checksum or tensor is a CheckpointError."""
        directory = Path(directory)
        cfg_path, w_path, t_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME, directory / TOKENIZER_NAME
        for p in (cfg_path, w_path, t_path):
            if not p.is_file():
                raise CheckpointError(f"{directory}: missing {p.name}")
        raw = read_json(cfg_path)
        if not isinstance(raw, dict) or raw.get("model_class") != "AlignModel" or not isinstance(raw.get("model"),
                                                                                                  dict):
            raise CheckpointError(f"{cfg_path}: not an AlignModel config")
        try:
            config = AlignConfig.from_dict(raw["model"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{cfg_path}: {e}") from e
        if verify and raw.get("weights_sha256") and sha256_file(w_path) != raw["weights_sha256"]:
            raise CheckpointError(f"{w_path}: sha256 differs from the one in {CONFIG_NAME}")
        tokenizer = BPETokenizer(t_path.read_text(encoding="utf-8"))
        if verify and raw.get("tokenizer_sha256") and tokenizer.sha256 != raw["tokenizer_sha256"]:
            raise CheckpointError(f"{t_path}: sha256 differs from the one in {CONFIG_NAME}")
        model = cls(config, tokenizer)
        state = load_safetensors(w_path, map_location=str(map_location))
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{w_path}: weights do not match {CONFIG_NAME}: {e}") from e
        model.info = raw
        return model.to(map_location).eval()
