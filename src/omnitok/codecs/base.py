"""The codec interface: data <-> discrete codes, saved as a folder (config.json + model.safetensors).

Every codec (text BPE, image VQ, audio RVQ, video VQ) implements :class:`Codec`:

* ``encode(x) -> codes`` shaped (B, *code_grid, num_codebooks), int64;
* ``decode(codes) -> x``;
* ``code_grid(input_shape) -> tuple`` the code grid for an input shape (no batch dimension);
* ``codebook_size``, ``num_codebooks``, ``modality``;
* ``save_pretrained(dir)`` / ``from_pretrained(dir)``.

The config written to ``config.json`` carries ``codec_class`` (so :func:`load_codec` can dispatch),
the constructor arguments and ``weights_sha256`` (a hash of the saved tensors) that the vocabulary
records, so a token shard always names the exact weights that made it.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from omnitok._io import CheckpointError, fsync_replace, load_safetensors, sha256_file, write_json_atomic
from omnitok.quantizers.base import CodeSpace, Quantizer
from omnitok.quantizers.registry import build_quantizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class CodecOutput:
    """What every codec's training forward returns (image, video and audio alike)."""

    recon: Tensor  # the reconstruction, shaped like the input (audio: (B, 1, frames * hop))
    codes: Tensor  # (B, *grid, num_codebooks) int64
    loss: Tensor  # the quantizer's auxiliary loss (already weighted), a scalar
    metrics: dict[str, Tensor] = field(default_factory=dict)


def codec_quantizer(quantizer: Quantizer | str, quantizer_kwargs: dict[str, Any] | None,
                    who: str) -> tuple[Quantizer, str, dict[str, Any]]:
    """(quantizer, name, kwargs) for a codec: the registry-built Quantizer it was handed, or one built by name from
    ``quantizer_kwargs`` (the plain form config.json records); the name and kwargs are what it saves."""
    if isinstance(quantizer, Quantizer):
        if quantizer_kwargs:
            raise ValueError(f"{who}: quantizer_kwargs go with a quantizer name, not a Quantizer instance")
    else:
        quantizer = build_quantizer(quantizer, **dict(quantizer_kwargs or {}))
    name, kwargs = quantizer_preset(quantizer, who)
    return quantizer, name, kwargs


def quantizer_preset(quantizer: Quantizer, who: str) -> tuple[str, dict[str, Any]]:
    """(name, keyword arguments) a quantizer was built with by :func:`omnitok.quantizers.registry.build_quantizer`
    (what a codec saves to rebuild it); ValueError for a quantizer built another way."""
    preset = getattr(quantizer, "preset", None)
    if preset is None:
        raise ValueError(f"{who}: the {type(quantizer).__name__} was not built by "
                         "omnitok.quantizers.registry.build_quantizer (or a codec preset), so its name and "
                         "arguments cannot be saved with the codec; build it with build_quantizer(name, **kwargs)")
    return preset[0], dict(preset[1])


class Codec(nn.Module, CodeSpace):
    """Base class of every codec. Subclasses store their constructor kwargs in ``self.config``; ``codebook_size``
    and ``num_codebooks`` (default 1) come from :class:`~omnitok.quantizers.base.CodeSpace`."""

    #: "text" | "image" | "audio" | "video"
    modality: ClassVar[str]
    #: registry of codec classes by name, filled by ``__init_subclass__``
    registry: ClassVar[dict[str, type[Codec]]] = {}

    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None):
            Codec.registry[cls.__name__] = cls

    # ----- the interface --------------------------------------------------------------------
    @abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """x: a batch of data -> codes (B, *code_grid, num_codebooks) int64."""

    @abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, *code_grid, num_codebooks) -> a batch of data."""

    @abstractmethod
    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The code grid for one input of ``input_shape`` (no batch dimension)."""

    # ----- folders ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> str:
        """Write ``config.json`` + ``model.safetensors`` atomically; return the weights hash."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        save_file(state, str(tmp_path))
        digest = sha256_file(tmp_path)
        fsync_replace(tmp_path, directory / WEIGHTS_NAME)
        cfg = {
            "codec_class": type(self).__name__,
            "modality": self.modality,
            "config": self.config,
            "weights_sha256": digest,
            **(extra or {}),
        }
        write_json_atomic(directory / CONFIG_NAME, cfg)
        return digest

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str = "cpu",
                        verify: bool = True) -> Codec:
        """Load a codec folder. Called on :class:`Codec` itself it dispatches on ``codec_class``.

        ``verify`` (default): the weights file's sha256 must equal the ``weights_sha256`` recorded at save, so
        a damaged or swapped file is refused with its path instead of decoding garbage."""
        cfg = read_codec_config(directory)
        digest = cfg.get("weights_sha256")
        w_path = Path(directory) / str(cfg.get("weights_file") or WEIGHTS_NAME)  # the text codec: tokenizer.json
        if verify and isinstance(digest, str) and w_path.is_file() and sha256_file(w_path) != digest:
            raise CheckpointError(f"{w_path}: sha256 differs from the weights_sha256 recorded in "
                                  f"{Path(directory) / CONFIG_NAME} at save: the file is damaged or was replaced")
        name = cfg["codec_class"]
        target = Codec.registry.get(name)
        if target is None:
            raise CheckpointError(f"{directory}: unknown codec_class {name!r}; known: {sorted(Codec.registry)}")
        if cls is not Codec and not issubclass(target, cls):
            raise CheckpointError(f"{directory}: holds a {name}, not a {cls.__name__}")
        codec = target(**cfg["config"])
        codec.load_weights(Path(directory) / WEIGHTS_NAME, map_location=map_location)
        codec.weights_sha256 = cfg.get("weights_sha256")
        codec.eval()
        return codec

    def load_weights(self, path: Path, map_location: str = "cpu") -> None:
        """Load safetensors weights, naming every tensor that disagrees with the config."""
        state = load_safetensors(path, map_location)
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(own[k].shape)}"
            for k in own
            if k in state and state[k].shape != own[k].shape
        ]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing tensors {missing[:8]}{'...' if len(missing) > 8 else ''}")
            if unexpected:
                parts.append(f"unexpected tensors {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
            if wrong:
                parts.append("shape mismatches " + "; ".join(wrong[:8]))
            raise CheckpointError(f"{path}: weights disagree with config.json: " + ", ".join(parts))
        self.load_state_dict(state)


class QuantizedCodec(Codec):
    """A codec around one :class:`Quantizer` (``self.quantizer``): its codes are the quantizer's, so are its sizes."""

    quantizer: Quantizer

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks


def load_codec(directory: str | os.PathLike[str], map_location: str = "cpu", verify: bool = True) -> Codec:
    """Load any codec folder (dispatches on the ``codec_class`` in its config.json); ``verify``: check the
    weights against the recorded sha256."""
    return Codec.from_pretrained(directory, map_location=map_location, verify=verify)


def read_codec_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint folder (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
    if not path.exists():
        raise CheckpointError(f"{directory}: missing {CONFIG_NAME}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
    for key in ("codec_class", "config"):
        if key not in cfg:
            raise CheckpointError(f"{path}: missing key {key!r}")
    return cfg


def select_device(device: str | None = None) -> torch.device:
    """'auto'/None -> cuda when present, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
