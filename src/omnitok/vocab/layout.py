"""The id layout of the unified vocabulary: special tokens, then one id range per codec and codebook level, and
code-level segments <-> ids (:class:`IdLayout`). No codec runs here and no file is read: see
:mod:`omnitok.vocab.vocabulary` (codecs and folders) and :mod:`omnitok.vocab.parser` (ids -> segments).

Layout (``vocab.json`` records it)::

    [0, S)                      special tokens (``omnitok.vocab.special``: PAD BOS EOS UNCOND EOR EOF DELAY_PAD,
                                BEGIN/END per modality, size tokens <|h=n|> <|w=n|> <|f=n|>)
    [off_text,  + V_text)       text codec (BPE ids)
    [off_image, + n_q*K_image)  image codec; one range PER CODEBOOK LEVEL: level k code c -> off + k*K + c
    [off_audio, + n_q*K_audio)  audio codec, same per-level ranges
    [off_video, + n_q*K_video)  video codec, same per-level ranges

A video codec that codes part of a clip with the vocabulary's image codec (``SpriteMotionCodec``: the sprite's
window by the image codec, then its place and motion) may share that codec's ids: with ``image_rows = R`` in the
video entry, rows 0..R-1 of every video frame take the image codec's ids (level k code c -> off_image + k*K + c)
and only the later rows the video range. A digit then has the same ids as a picture and inside a clip, so what
a model learns reading images it uses reading videos (as Emu3 codes video frames with its image tokenizer).

Separate ranges per codebook level (rather than one range shared by all levels) let the model tell the levels
apart from the id alone, let the grammar restrict each position to its level, and cost only an embedding
table of n_q*K rows.

Segment grammar (what :meth:`IdLayout.encode_codes` writes; :mod:`omnitok.vocab.grammar` enforces it and the
parser walks it)::

    document := [BOS] (segment | UNCOND)* [EOS PAD*]
    text     := BEGIN_TEXT  text_id*  END_TEXT
    image    := BEGIN_IMAGE <|h=h|> <|w=w|> (code{w*n_q} EOR){h} END_IMAGE
    video    := BEGIN_VIDEO <|f=t|> <|h=h|> <|w=w|> ((code{w*n_q} EOR){h} EOF){t} END_VIDEO
    audio    := BEGIN_AUDIO stream END_AUDIO        (stream: the (T, n_q) grid, T >= 1, laid out with the
                                                     vocabulary's audio pattern, "delay" or "flatten")

Within a grid cell the n_q levels follow each other (level 0 first). In the delay pattern the empty slots
hold DELAY_PAD.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from omnitok.vocab import patterns
from omnitok.vocab.document import Document, Segment, Uncond, as_code_array
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.grammar import GrammarState
from omnitok.vocab.special import MODALITIES, MODALITY_IDS, SpecialTokens

__all__ = ["AUDIO_PATTERNS", "FORMAT_VERSION", "CodecEntry", "IdLayout"]

FORMAT_VERSION = 1
AUDIO_PATTERNS = ("delay", "flatten")


@dataclass(frozen=True)
class CodecEntry:
    """One codec's id range."""

    modality: str
    name: str
    codec_class: str
    weights_sha256: str
    codebook_size: int
    num_codebooks: int
    offset: int
    image_rows: int = 0  # video only: rows 0..image_rows-1 of every frame take the image codec's ids

    @property
    def size(self) -> int:
        return self.codebook_size * self.num_codebooks

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def level_range(self, level: int) -> tuple[int, int]:
        lo = self.offset + level * self.codebook_size
        return lo, lo + self.codebook_size


class IdLayout:
    """Special tokens + one id range per codec: ids of tokens and ranges, code-level segments -> ids, the
    grammar. ``entries``: modality -> :class:`CodecEntry` (laid out in the order text, image, audio, video)."""

    def __init__(self, entries: Mapping[str, CodecEntry], specials: SpecialTokens | None = None,
                 audio_pattern: str = "delay") -> None:
        if audio_pattern not in AUDIO_PATTERNS:
            raise ValueError(f"audio_pattern: expected one of {AUDIO_PATTERNS}, got {audio_pattern!r}")
        for m in entries:
            if m not in MODALITIES:
                raise ValueError(f"codec modality {m!r} unknown; expected one of {MODALITIES}")
        self.specials = specials or SpecialTokens()
        self.audio_pattern = audio_pattern
        self.entries: dict[str, CodecEntry] = {m: entries[m] for m in MODALITIES if m in entries}
        for m, e in self.entries.items():
            if e.image_rows and (m != "video" or "image" not in self.entries
                                 or self.entries["image"].num_codebooks != e.num_codebooks):
                raise ValueError(f"{m} entry: image_rows={e.image_rows} needs a video codec beside an image codec "
                                 f"of as many codebooks ({e.num_codebooks})")
        self.size = max([self.specials.size] + [e.stop for e in self.entries.values()])
        self._build_tables()

    @staticmethod
    def lay_out(specials: SpecialTokens, codecs: Mapping[str, Any], names: Mapping[str, str],
                hashes: Mapping[str, str]) -> dict[str, CodecEntry]:
        """Entries for ``codecs`` (modality -> an object with ``codebook_size`` / ``num_codebooks``), one range
        after another from the end of the special tokens, in the order text, image, audio, video."""
        entries: dict[str, CodecEntry] = {}
        offset = specials.size
        for m in MODALITIES:
            if m not in codecs:
                continue
            c = codecs[m]
            e = CodecEntry(modality=m, name=names[m], codec_class=type(c).__name__, weights_sha256=hashes[m],
                           codebook_size=int(c.codebook_size), num_codebooks=int(c.num_codebooks), offset=offset)
            entries[m] = e
            offset = e.stop
        return entries

    def _build_tables(self) -> None:
        sp = self.specials
        table = np.zeros(self.size, dtype=np.uint8)  # modality type of every id
        for m, e in self.entries.items():
            table[e.offset : e.stop] = MODALITY_IDS[m]
        self._modality_table = table
        self._modality_table_t = torch.from_numpy(table)
        self._begin_to_modality = {sp.begin(m): m for m in MODALITIES if m in self.entries}

    # ----- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        sp = self.specials
        return {
            "format_version": FORMAT_VERSION,
            "size": self.size,
            "audio_pattern": self.audio_pattern,
            "specials": {
                "max_height": sp.max_height,
                "max_width": sp.max_width,
                "max_frames": sp.max_frames,
                **({"with_mask": True} if sp.with_mask else {}),  # absent = False: older files hash the same
                "names": sp.names(),
            },
            # image_rows absent = 0: vocabularies without shared rows hash as before
            "codecs": {m: {k: v for k, v in asdict(e).items() if k != "image_rows" or v}
                       for m, e in self.entries.items()},
        }

    @property
    def hash(self) -> str:
        """sha256 of the layout (special tokens, ranges, codec names and weight hashes)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        ranges = ", ".join(f"{m}=[{e.offset},{e.stop}) n_q={e.num_codebooks}"
                           + (f" (rows < {e.image_rows}: image ids)" if e.image_rows else "")
                           for m, e in self.entries.items())
        return (f"{type(self).__name__}(size={self.size}, specials={self.specials.size}, {ranges}, "
                f"audio={self.audio_pattern})")

    # ----- ids of tokens and ranges -------------------------------------------------------------
    @property
    def pad_id(self) -> int:
        return self.specials.pad

    @property
    def bos_id(self) -> int:
        return self.specials.bos

    @property
    def eos_id(self) -> int:
        return self.specials.eos

    @property
    def uncond_id(self) -> int:
        return self.specials.uncond

    @property
    def mask_id(self) -> int:
        """id of ``<|mask|>``; a :class:`VocabularyError` when the vocabulary was built without it."""
        if self.specials.mask is None:
            raise VocabularyError("this vocabulary has no <|mask|> id; build it with with_mask=True "
                                  "(omnitok tokenize --with-mask, or vocab: {with_mask: true} in a quickstart preset)")
        return self.specials.mask

    def begin_id(self, modality: str) -> int:
        return self.specials.begin(modality)

    def end_id(self, modality: str) -> int:
        return self.specials.end(modality)

    def modality_of_begin(self, i: int) -> str:
        """The modality a BEGIN id opens (KeyError for any other id)."""
        return self._begin_to_modality[i]

    def height_id(self, h: int) -> int:
        self._check_size("height", h, self.specials.max_height)
        return self.specials.height_base + h - 1

    def width_id(self, w: int) -> int:
        self._check_size("width", w, self.specials.max_width)
        return self.specials.width_base + w - 1

    def frames_id(self, t: int) -> int:
        self._check_size("frames", t, self.specials.max_frames)
        return self.specials.frames_base + t - 1

    @staticmethod
    def _check_size(what: str, n: int, limit: int) -> None:
        if not 1 <= n <= limit:
            raise VocabularyError(f"{what} {n} outside [1, {limit}] (the vocabulary's max_{what})")

    def id_range(self, modality: str, level: int | None = None) -> tuple[int, int]:
        """[lo, hi) of a codec's ids (of one codebook level when given)."""
        e = self._entry(modality)
        return (e.offset, e.stop) if level is None else e.level_range(level)

    def token_name(self, i: int) -> str:
        """Readable name of an id (special token string, or ``image:L0:123``)."""
        if 0 <= i < self.specials.size:
            names = getattr(self, "_special_names", None) or self.specials.names()
            self._special_names = names
            return names[i]
        for m, e in self.entries.items():
            if e.offset <= i < e.stop:
                level, code = divmod(i - e.offset, e.codebook_size)
                return f"{m}:{code}" if e.num_codebooks == 1 else f"{m}:L{level}:{code}"
        return f"<out of range {i}>"

    def _entry(self, modality: str) -> CodecEntry:
        e = self.entries.get(modality)
        if e is None:
            raise VocabularyError(f"this vocabulary has no {modality} codec (it has {sorted(self.entries)})")
        return e

    # ----- modality types ---------------------------------------------------------------------
    def modality_of(self, ids: Tensor | np.ndarray | Sequence[int]) -> Tensor | np.ndarray:
        """Per-id modality type (0 special, 1 text, 2 image, 3 audio, 4 video) as uint8, same container type
        (list -> numpy). Out-of-range ids count as special (0)."""
        if isinstance(ids, Tensor):
            t = self._modality_table_t.to(ids.device)
            safe = ids.clamp(0, self.size - 1)
            out = t[safe]
            return torch.where((ids >= 0) & (ids < self.size), out, torch.zeros_like(out))
        arr = np.asarray(ids, dtype=np.int64)
        safe = np.clip(arr, 0, self.size - 1)
        return np.where((arr >= 0) & (arr < self.size), self._modality_table[safe], 0).astype(np.uint8)

    def modality_mask(self, modality: str, device: torch.device | str | None = None) -> Tensor:
        """Bool (V,) mask of the ids of one modality's codec."""
        mask = torch.zeros(self.size, dtype=torch.bool, device=device)
        lo, hi = self.id_range(modality)
        mask[lo:hi] = True
        return mask

    def grammar(self) -> GrammarState:
        """A fresh :class:`~omnitok.vocab.grammar.GrammarState` at the start of a document."""
        return GrammarState(self)

    # ----- code-level segments -> ids ------------------------------------------------------------
    def encode_codes(self, doc: Document) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """A document whose segments all have codes -> (ids int64 (L,), [(start, stop) of each segment])."""
        parts: list[np.ndarray] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        if doc.bos:
            parts.append(np.array([self.specials.bos], dtype=np.int64))
            pos = 1
        for k, seg in enumerate(doc.segments):
            try:
                part = self.encode_segment(seg)
            except VocabularyError as e:
                raise VocabularyError(f"segment {k} ({type(seg).__name__}): {e.reason}") from None
            parts.append(part)
            spans.append((pos, pos + len(part)))
            pos += len(part)
        if doc.eos:
            parts.append(np.array([self.specials.eos], dtype=np.int64))
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return ids, spans

    def video_rows(self, h: int) -> list[tuple[slice, CodecEntry]]:
        """The rows of an h-row video frame and the entry whose ids they take: the image codec's for the first
        ``image_rows`` (shared image ids), the video codec's for the rest."""
        e = self._entry("video")
        r = min(e.image_rows, h)
        return [(slice(0, r), self.entries["image"]), (slice(r, h), e)] if r else [(slice(0, h), e)]

    def _lift(self, codes: np.ndarray, e: CodecEntry, what: str) -> np.ndarray:
        """codes (..., n_q) -> vocabulary ids with per-level offsets (checks ranges and n_q)."""
        if codes.shape[-1] != e.num_codebooks:
            raise VocabularyError(f"{what} codes have n_q={codes.shape[-1]}, the codec has {e.num_codebooks}")
        if codes.size and (codes.min() < 0 or codes.max() >= e.codebook_size):
            raise VocabularyError(
                f"{what} codes must lie in [0, {e.codebook_size}), got [{codes.min()}, {codes.max()}]"
            )
        return codes + (e.offset + e.codebook_size * np.arange(e.num_codebooks, dtype=np.int64))

    def encode_segment(self, seg: Segment) -> np.ndarray:
        """One segment with codes (or UNCOND) -> its ids, BEGIN to END."""
        sp = self.specials
        if isinstance(seg, Uncond):
            return np.array([sp.uncond], dtype=np.int64)
        m = seg.modality
        e = self._entry(m)
        if seg.codes is None:
            raise VocabularyError(f"a {type(seg).__name__} segment needs codes here (run its codec first)")
        if m == "text":
            codes = as_code_array(seg.codes, 1, "text codes").reshape(-1, 1)
            body = self._lift(codes, e, "text").reshape(-1)
            return np.concatenate([[sp.begin(m)], body, [sp.end(m)]]).astype(np.int64)
        if m == "image":
            codes = as_code_array(seg.codes, 2, "image codes")
            h, w, _ = codes.shape
            lifted = self._lift(codes, e, "image").reshape(h, -1)  # (h, w*n_q)
            rows = np.concatenate([lifted, np.full((h, 1), sp.eor, dtype=np.int64)], axis=1)
            head = [sp.begin(m), self.height_id(h), self.width_id(w)]
            return np.concatenate([head, rows.reshape(-1), [sp.end(m)]]).astype(np.int64)
        if m == "video":
            codes = as_code_array(seg.codes, 3, "video codes")
            t, h, w, _ = codes.shape
            lifted = np.concatenate([self._lift(codes[:, rows], entry, f"video ({entry.modality} rows)")
                                     for rows, entry in self.video_rows(h)], axis=1).reshape(t, h, -1)  # (t, h, w*n_q)
            rows = np.concatenate([lifted, np.full((t, h, 1), sp.eor, dtype=np.int64)], axis=2).reshape(t, -1)
            frames = np.concatenate([rows, np.full((t, 1), sp.eof, dtype=np.int64)], axis=1)
            head = [sp.begin(m), self.frames_id(t), self.height_id(h), self.width_id(w)]
            return np.concatenate([head, frames.reshape(-1), [sp.end(m)]]).astype(np.int64)
        if m == "audio":
            codes = as_code_array(seg.codes, 1, "audio codes")
            if codes.shape[0] < 1:
                raise VocabularyError("audio codes need T >= 1 time steps")
            lifted = self._lift(codes, e, "audio")
            stream = patterns.to_stream(lifted, self.audio_pattern, pad=sp.delay_pad)
            return np.concatenate([[sp.begin(m)], stream, [sp.end(m)]]).astype(np.int64)
        raise VocabularyError(f"unknown segment type {type(seg).__name__}")
