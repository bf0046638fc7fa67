"""Byte-level BPE text codec (Hugging Face ``tokenizers``), the text side of the unified vocabulary.

Byte-level BPE (GPT-2, https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf
sec. 2.2) maps any string to ids and back exactly: the 256 byte symbols are always in the vocabulary.

A folder holds ``config.json`` + ``tokenizer.json`` (no tensors; ``model.safetensors`` is not written).
``weights_sha256`` is the sha256 of ``tokenizer.json``, so the vocabulary records exactly which merges made
a token shard. Needs the ``vocab`` extra (``pip install 'omnitok[vocab]'``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnitok.codecs.base import CONFIG_NAME, CheckpointError, Codec, sha256_file, write_json_atomic

__all__ = ["TOKENIZER_NAME", "TextCodec"]

TOKENIZER_NAME = "tokenizer.json"


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the text codec needs `tokenizers`: pip install 'omnitok[vocab]'") from e
    return tokenizers


class TextCodec(Codec):
    """Byte-level BPE: ``encode(list[str]) -> list[Tensor (L,)]``, ``decode(list[Tensor]) -> list[str]``.

    Build with :meth:`train_bpe` (or ``omnitok train text-codec``) or load with ``TextCodec.from_pretrained(dir)``.
    The codes of a text are 1-D (no codebook axis): text is variable length, so ``encode`` returns a list.
    """

    modality = "text"

    def __init__(self, vocab_size: int = 8192, tokenizer_json: str | None = None) -> None:
        super().__init__()
        if vocab_size < 257:
            raise ValueError(f"vocab_size must be >= 257 (256 bytes + merges), got {vocab_size}")
        self.config: dict[str, Any] = {"vocab_size": vocab_size}
        self.tokenizer = None
        self.weights_sha256: str | None = None
        if tokenizer_json is not None:
            self._set_tokenizer_json(tokenizer_json)

    # ----- construction ---------------------------------------------------------------------------
    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2,
              show_progress: bool = False) -> TextCodec:
        """Learn byte-level BPE merges from ``texts`` (any iterable of strings)."""
        tk = _tokenizers()
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=show_progress,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        codec = cls(vocab_size=vocab_size)
        codec._set_tokenizer_json(tok.to_str())
        return codec

    def _set_tokenizer_json(self, text: str) -> None:
        tk = _tokenizers()
        try:
            self.tokenizer = tk.Tokenizer.from_str(text)
        except Exception as e:  # tokenizers raises its own Exception type
            raise CheckpointError(f"tokenizer.json is not a valid tokenizer ({e})") from e
        self._json = text
        self.weights_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        n = self.tokenizer.get_vocab_size()
        if n > self.config["vocab_size"]:
            raise CheckpointError(f"tokenizer has {n} ids, more than vocab_size={self.config['vocab_size']}")

    def _require(self):
        if self.tokenizer is None:
            raise RuntimeError("TextCodec has no tokenizer yet: train it or load it with from_pretrained(dir)")
        return self.tokenizer

    # ----- the codec interface --------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        """The id range reserved in the vocabulary (``vocab_size``; the learned tokenizer may use fewer)."""
        return int(self.config["vocab_size"])

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Text length in codes depends on the text itself: -1 (variable)."""
        return (-1,)

    def encode(self, x: str | Sequence[str]) -> list[Tensor]:  # type: ignore[override]
        """A string or a list of strings -> a list of int64 tensors (L_i,)."""
        tok = self._require()
        texts = [x] if isinstance(x, str) else list(x)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"text codec: item {i} is a {type(t).__name__}, expected str")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as e:  # a lone surrogate (e.g. from a broken decode) is no text
                raise ValueError(f"text codec: item {i} is not valid Unicode text (character "
                                 f"{t[e.start]!r} at position {e.start} cannot be UTF-8 encoded)") from None
        encs = tok.encode_batch(texts, add_special_tokens=False)
        return [torch.tensor(e.ids, dtype=torch.long) for e in encs]

    def decode(self, codes: Tensor | Sequence[Tensor] | Sequence[Sequence[int]]) -> list[str]:  # type: ignore[override]
        """A list of 1-D code tensors (or a padded (B, L) tensor without padding) -> list of strings."""
        tok = self._require()
        if isinstance(codes, Tensor) and codes.ndim == 1:
            codes = [codes]
        seqs = [c.reshape(-1).tolist() if isinstance(c, Tensor) else [int(v) for v in c] for c in codes]
        n = tok.get_vocab_size()
        for i, s in enumerate(seqs):
            if s and (min(s) < 0 or max(s) >= n):
                raise ValueError(f"text codec: codes of item {i} outside [0, {n})")
        return tok.decode_batch(seqs, skip_special_tokens=False)

    # ----- folders ----------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> str:
        """Write ``tokenizer.json`` + ``config.json``; returns the sha256 of tokenizer.json."""
        self._require()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False, mode="w",
                                         encoding="utf-8") as tmp:
            tmp.write(self._json)
            tmp_path = Path(tmp.name)
        digest = sha256_file(tmp_path)
        os.replace(tmp_path, directory / TOKENIZER_NAME)
        cfg = {
            "codec_class": type(self).__name__,
            "modality": self.modality,
            "config": self.config,
            "weights_sha256": digest,
            "weights_file": TOKENIZER_NAME,
            **(extra or {}),
        }
        write_json_atomic(directory / CONFIG_NAME, cfg)
        return digest

    def load_weights(self, path: Path, map_location: str = "cpu") -> None:
        """Called by ``Codec.from_pretrained`` with ``<dir>/model.safetensors``: reads ``<dir>/tokenizer.json``."""
        tok_path = Path(path).parent / TOKENIZER_NAME
        if not tok_path.exists():
            raise CheckpointError(f"{tok_path.parent}: missing {TOKENIZER_NAME}")
        self._set_tokenizer_json(tok_path.read_text(encoding="utf-8"))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str = "cpu",
                        verify: bool = True) -> TextCodec:
        codec = super().from_pretrained(directory, map_location=map_location, verify=verify)
        # the hash is the one of the file actually read, not the one claimed in config.json
        codec.weights_sha256 = hashlib.sha256(codec._json.encode("utf-8")).hexdigest()
        return codec  # type: ignore[return-value]
