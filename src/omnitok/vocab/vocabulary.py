"""The unified vocabulary: the id layout (:mod:`omnitok.vocab.layout`) with its codecs attached.

    vocab = Vocabulary.build({"text": text_codec, "image": "runs/codec/image"})   # lay out the ids
    ids = vocab.encode(Document([Text("a cat"), Image(data=x)]))                  # raw segments: codecs run
    doc = vocab.decode(ids, data=True)                                            # strict parse + codecs
    vocab.save("runs/vocab"); Vocabulary.load("runs/vocab")

What lives where: the id layout and code-level encoding in ``layout.py``, the strict parser in ``parser.py`` (it
walks the grammar of ``grammar.py``), folder I/O (``vocab.json``, codec copies, weight hashes) in ``folder.py``,
running the codecs over documents in ``media.py``. This class ties them together and keeps one public API.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from omnitok.codecs.base import Codec, load_codec
from omnitok.vocab.document import Document, Segment, Uncond
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.folder import (
    VOCAB_NAME,
    check_codec,
    codec_weights_hash,
    copy_codec_folder,
    read_layout,
    save_codec,
    write_vocab_json,
)
from omnitok.vocab.layout import CodecEntry, IdLayout
from omnitok.vocab.media import decode_media, encode_media
from omnitok.vocab.parser import parse_ids
from omnitok.vocab.special import MODALITIES, SpecialTokens

__all__ = ["VOCAB_NAME", "CodecEntry", "Vocabulary", "codec_weights_hash"]


def _shared_image_rows(codecs: Mapping[str, Codec]) -> int:
    """Rows of every video frame coded by the image codec, checked: ValueError unless the video codec codes them
    with the image codec's own weights."""
    video, image = codecs.get("video"), codecs.get("image")
    rows = int(getattr(video, "image_rows", 0) or 0)
    if image is None or video is None or not rows:
        raise ValueError("share_image_ids: needs an image codec and a video codec that codes rows of its grid with "
                         f"it (e.g. SpriteMotionCodec); got image={type(image).__name__}, "
                         f"video={type(video).__name__}")
    mine, theirs = video.image.state_dict(), image.state_dict()
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine):
        raise ValueError("share_image_ids: the video codec's image codec has other weights than the vocabulary's "
                         "image codec; derive the video codec from this image codec (codecs/builder.derive_codec)")
    return rows


class Vocabulary(IdLayout):
    """Special tokens + one id range per codec; ``encode(doc) -> ids`` and ``decode(ids) -> doc``.

    Build with :meth:`build`, write with :meth:`save`, read with :meth:`load`. Codecs are optional after
    loading (``load_codecs=False``): code-level encode/decode, ``modality_of`` and the grammar need only the
    layout.
    """

    def __init__(
        self,
        entries: Mapping[str, CodecEntry],
        specials: SpecialTokens | None = None,
        audio_pattern: str = "delay",
        codecs: Mapping[str, Codec] | None = None,
    ) -> None:
        super().__init__(entries, specials, audio_pattern)
        self.codecs: dict[str, Codec] = dict(codecs or {})
        self._sources: dict[str, Path] = {}  # modality -> the codec folder it was built from (copied by save)

    # ----- construction ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        codecs: Mapping[str, Codec | str | os.PathLike],
        *,
        audio_pattern: str = "delay",
        max_height: int = 64,
        max_width: int = 64,
        max_frames: int = 64,
        names: Mapping[str, str] | None = None,
        with_mask: bool = False,
        share_image_ids: bool = False,
    ) -> Vocabulary:
        """Lay out ids for ``codecs`` (modality -> Codec or codec folder), in the order text, image, audio, video.

        with_mask: add the special ``<|mask|>`` (masked-image training and ``method="masked"`` decoding).
        share_image_ids: the video codec's rows coded by the image codec (its ``image_rows``, e.g. a
        ``SpriteMotionCodec``'s window) take the image codec's ids (``layout.py``); the video codec must wrap the
        very weights of ``codecs["image"]``."""
        specials = SpecialTokens(max_height=max_height, max_width=max_width, max_frames=max_frames,
                                 with_mask=with_mask)
        loaded: dict[str, Codec] = {}
        sources: dict[str, Path] = {}
        for m, c in codecs.items():
            if m not in MODALITIES:
                raise ValueError(f"codecs: key {m!r} is not a modality; expected one of {MODALITIES}")
            if isinstance(c, Codec):
                loaded[m] = c
            else:
                loaded[m] = load_codec(c)  # any codec class: importing omnitok registers them all
                sources[m] = Path(c)
            if loaded[m].modality != m:
                raise ValueError(f"codecs[{m!r}] is a {loaded[m].modality} codec ({type(loaded[m]).__name__})")
        names = {m: (names or {}).get(m) or (sources[m].name if m in sources else type(c).__name__)
                 for m, c in loaded.items()}
        entries = cls.lay_out(specials, loaded, names, {m: codec_weights_hash(c) for m, c in loaded.items()})
        if share_image_ids:
            entries["video"] = replace(entries["video"], image_rows=_shared_image_rows(loaded))
        vocab = cls(entries, specials, audio_pattern, loaded)
        vocab._sources = sources
        return vocab

    # ----- folders ----------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, copy_codecs: bool = True) -> Path:
        """Write ``vocab.json`` (+ each codec folder under ``codecs/<modality>/`` when ``copy_codecs``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if copy_codecs:
            for m, codec in self.codecs.items():
                dest = directory / "codecs" / m
                source = self._sources.get(m)
                if source is None:
                    save_codec(codec, dest, self.entries[m])
                elif source.resolve() != dest.resolve():
                    copy_codec_folder(source, dest)
        write_vocab_json(self, directory)
        return directory

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        codecs: Mapping[str, Codec | str | os.PathLike] | None = None,
        *,
        load_codecs: bool = True,
        accept_hash_mismatch: bool = False,
        map_location: str = "cpu",
    ) -> Vocabulary:
        """Read a vocabulary folder. Codecs come from ``codecs`` (modality -> Codec or folder) or from the
        folder's ``codecs/<modality>/``; a codec whose weights hash differs from the recorded one raises
        :class:`VocabularyError` unless ``accept_hash_mismatch=True`` (then it warns)."""
        directory = Path(directory)
        entries, specials, audio_pattern, recorded = read_layout(directory)
        vocab = cls(entries, specials, audio_pattern)
        if recorded and recorded != vocab.hash:
            raise VocabularyError(f"{directory / VOCAB_NAME}: recorded hash {recorded[:12]} != recomputed "
                                  f"{vocab.hash[:12]}")
        if not load_codecs and not codecs:
            return vocab
        given = dict(codecs or {})
        for m in entries:
            src = given.get(m)
            if src is None:
                if not load_codecs:
                    continue
                src = directory / "codecs" / m
                if not src.exists():
                    raise VocabularyError(f"{directory}: no codec folder for {m} (expected {src}); pass codecs=")
            codec = src if isinstance(src, Codec) else load_codec(src, map_location=map_location)
            vocab.attach_codec(m, codec, accept_hash_mismatch=accept_hash_mismatch)
        return vocab

    def attach_codec(self, modality: str, codec: Codec, *, accept_hash_mismatch: bool = False) -> None:
        """Use ``codec`` for ``modality`` after checking it matches the recorded entry."""
        check_codec(self.entries, modality, codec, accept_hash_mismatch=accept_hash_mismatch)
        self.codecs[modality] = codec

    # ----- running the codecs -------------------------------------------------------------------
    def fill_codes(self, docs: Sequence[Document] | Document, batch_size: int = 64) -> None:
        """Encode the raw data of every segment without codes with this vocabulary's codecs
        (:func:`omnitok.vocab.media.encode_media`)."""
        encode_media(self.codecs, docs, batch_size)

    def decode_data(self, doc: Document) -> Document:
        """Fill the raw data of every code segment with the codecs (in place; returns doc)."""
        return decode_media(self.codecs, doc)

    # ----- documents <-> ids --------------------------------------------------------------------
    def encode(self, doc: Document | Sequence[Segment]) -> Tensor:
        """Document -> 1-D int64 ids (raw segments are encoded with the codecs first)."""
        ids, _ = self.encode_with_spans(doc)
        return torch.from_numpy(ids)

    def encode_with_spans(self, doc: Document | Sequence[Segment]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Document -> (ids int64 numpy (L,), [(start, stop) of each segment in ids])."""
        if not isinstance(doc, Document):
            doc = Document(list(doc))
        if any(not isinstance(s, Uncond) and s.codes is None for s in doc.segments):
            self.fill_codes(doc)
        return self.encode_codes(doc)

    def encode_prompt(self, doc: Document | Sequence[Segment], target: str, grid: Sequence[int] | None = None,
                      uncond: bool = False) -> Tensor:
        """Generation prompt: ``BOS <condition segments> BEGIN_<target> [size tokens]`` as 1-D int64 ids.

        ``grid`` is (h, w) for an image, (t, h, w) for a video (the grammar then forces that shape); text and
        audio take none. ``uncond=True`` replaces the condition by ``<|uncond|>`` (the classifier-free-guidance
        branch, matching the mixture loader's dropout)."""
        if not isinstance(doc, Document):
            doc = Document(list(doc))
        self._entry(target)
        cond = Document([Uncond()] if uncond else list(doc.segments), bos=True, eos=False)
        ids = self.encode(cond).tolist() + [self.specials.begin(target)]
        need = {"image": 2, "video": 3}.get(target, 0)
        if len(grid or ()) != need:
            raise VocabularyError(f"a {target} prompt needs a grid of {need} sizes, got {grid!r}")
        if target == "image":
            ids += [self.height_id(int(grid[0])), self.width_id(int(grid[1]))]
        elif target == "video":
            ids += [self.frames_id(int(grid[0])), self.height_id(int(grid[1])), self.width_id(int(grid[2]))]
        return torch.tensor(ids, dtype=torch.long)

    def decode(
        self, ids: Tensor | np.ndarray | Sequence[int], errors: str = "strict", data: bool = False
    ) -> Document:
        """ids -> Document of code segments (exact inverse of :meth:`encode` at the code level).

        ``errors="strict"`` raises :class:`VocabularyError` naming the first position that breaks the grammar;
        ``errors="partial"`` keeps every well-formed segment and lists the problems in ``doc.problems``.
        ``data=True`` also decodes the codes with the codecs (``Text.text``, ``Image.data`` ...).
        """
        if errors not in ("strict", "partial"):
            raise ValueError(f"errors: expected 'strict' or 'partial', got {errors!r}")
        if isinstance(ids, Tensor):
            if ids.dtype.is_floating_point or ids.dtype == torch.bool:
                raise VocabularyError(f"ids must be integers, got {ids.dtype}")
            arr = ids.detach().cpu().reshape(-1).to(torch.int64).numpy()
        else:
            arr = np.asarray(ids)
            if arr.size == 0:
                arr = arr.astype(np.int64)
            if not np.issubdtype(arr.dtype, np.integer):
                raise VocabularyError(f"ids must be integers, got dtype {arr.dtype}")
            arr = arr.reshape(-1).astype(np.int64)
        doc = parse_ids(self, arr, partial=errors == "partial")
        if data:
            self.decode_data(doc)
        return doc
