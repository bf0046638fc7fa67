"""Vocabulary folders: ``vocab.json`` (the id layout and its hash) and a copy of each codec folder under
``codecs/<modality>/``; reading them back and checking codecs against the recorded weight hashes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes

from omnitok._io import write_json_atomic
from omnitok.codecs.base import Codec
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.layout import FORMAT_VERSION, CodecEntry, IdLayout
from omnitok.vocab.special import SpecialTokens

__all__ = ["CODEC_FILES", "VOCAB_NAME", "check_codec", "codec_weights_hash", "copy_codec_folder", "read_layout",
           "write_vocab_json"]

VOCAB_NAME = "vocab.json"
#: files of a codec folder copied into ``<vocab>/codecs/<modality>/``
CODEC_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def codec_weights_hash(codec: Codec) -> str:
    """The codec's recorded ``weights_sha256``, else the sha256 of its state dict as safetensors bytes."""
    h = getattr(codec, "weights_sha256", None)
    if h:
        return str(h)
    state = {k: v.detach().contiguous().cpu() for k, v in codec.state_dict().items()}
    return hashlib.sha256(safetensors_bytes(state)).hexdigest()


def copy_codec_folder(source: Path, dest: Path) -> None:
    """Copy the codec files of ``source`` (a training checkpoint folder may also hold optimizer state) to
    ``dest``, replacing it in one rename."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in CODEC_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def save_codec(codec: Codec, dest: Path, entry: CodecEntry) -> None:
    """Write ``codec`` as a folder at ``dest``; VocabularyError when its weights are not the ones ``entry``
    records."""
    digest = codec.save_pretrained(dest)
    if digest != entry.weights_sha256:
        raise VocabularyError(f"codec {entry.modality}: saved weights hash {digest[:12]} differs from the recorded "
                              f"{entry.weights_sha256[:12]} (was the codec changed after build?)")


def write_vocab_json(layout: IdLayout, directory: Path) -> None:
    """``<directory>/vocab.json``: the layout and its hash."""
    info = layout.to_dict()
    info["hash"] = layout.hash
    write_json_atomic(directory / VOCAB_NAME, info)


def read_layout(directory: str | os.PathLike) -> tuple[dict[str, CodecEntry], SpecialTokens, str, str | None]:
    """(entries, specials, audio pattern, recorded hash) of a vocabulary folder; VocabularyError naming the file
    when it is missing, malformed or of another format version."""
    path = Path(directory) / VOCAB_NAME
    if not path.exists():
        raise VocabularyError(f"{directory}: not a vocabulary folder (missing {VOCAB_NAME})")
    try:
        info: dict[str, Any] = json.loads(path.read_text())
        sp = info["specials"]
        specials = SpecialTokens(
            max_height=int(sp["max_height"]), max_width=int(sp["max_width"]), max_frames=int(sp["max_frames"]),
            with_mask=bool(sp.get("with_mask", False)),
        )
        entries = {m: CodecEntry(**e) for m, e in info["codecs"].items()}
        audio_pattern = info["audio_pattern"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise VocabularyError(f"{path}: malformed vocabulary file ({e!r})") from e
    if info.get("format_version") != FORMAT_VERSION:
        raise VocabularyError(f"{path}: format_version {info.get('format_version')} != {FORMAT_VERSION}")
    return entries, specials, audio_pattern, info.get("hash")


def check_codec(entries: Mapping[str, CodecEntry], modality: str, codec: Codec, *,
                accept_hash_mismatch: bool = False) -> None:
    """VocabularyError unless ``codec`` is the one ``entries[modality]`` records (modality, code grid, weights;
    with ``accept_hash_mismatch`` other weights only warn)."""
    e = entries.get(modality)
    if e is None:
        raise VocabularyError(f"this vocabulary has no {modality} codec (it has {sorted(entries)})")
    if codec.modality != modality:
        raise VocabularyError(f"{modality}: got a {codec.modality} codec ({type(codec).__name__})")
    if (int(codec.codebook_size), int(codec.num_codebooks)) != (e.codebook_size, e.num_codebooks):
        raise VocabularyError(
            f"{modality} codec has {codec.num_codebooks}x{codec.codebook_size} codes, the vocabulary "
            f"records {e.num_codebooks}x{e.codebook_size}"
        )
    h = codec_weights_hash(codec)
    if h != e.weights_sha256:
        msg = (
            f"{modality} codec weights hash {h[:12]} differs from the vocabulary's {e.weights_sha256[:12]} "
            f"({e.name}); token ids made with the other weights mean something else"
        )
        if not accept_hash_mismatch:
            raise VocabularyError(msg + "; pass accept_hash_mismatch=True to use it anyway")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
