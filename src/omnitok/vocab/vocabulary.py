"""The unified id space: special tokens, then one id range per codec; documents <-> id sequences.

Layout (``vocab.json`` records it)::

    [0, S)                      special tokens (``omnitok.vocab.special``: PAD BOS EOS UNCOND EOR EOF DELAY_PAD,
                                BEGIN/END per modality, size tokens <|h=n|> <|w=n|> <|f=n|>)
    [off_text,  + V_text)       text codec (BPE ids)
    [off_image, + n_q*K_image)  image codec; one range PER CODEBOOK LEVEL: level k code c -> off + k*K + c
    [off_audio, + n_q*K_audio)  audio codec, same per-level ranges
    [off_video, + n_q*K_video)  video codec, same per-level ranges

Separate ranges per codebook level (rather than one range shared by all levels) let the model tell the levels
apart from the id alone, let the grammar restrict each position to its level, and cost only an embedding
table of n_q*K rows.

Segment grammar (what ``encode`` writes, ``decode`` parses strictly and ``GrammarState`` enforces)::

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
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from omnitok.codecs.base import Codec, load_codec, write_json_atomic
from omnitok.vocab import patterns
from omnitok.vocab.document import (
    Audio,
    Document,
    Image,
    Segment,
    Text,
    Uncond,
    Video,
    as_code_array,
    codes_tensor,
)
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.special import MODALITIES, MODALITY_IDS, SpecialTokens

__all__ = ["VOCAB_NAME", "CodecEntry", "Vocabulary", "codec_weights_hash"]

VOCAB_NAME = "vocab.json"
#: files of a codec folder copied into ``<vocab>/codecs/<modality>/``
CODEC_FILES = ("config.json", "model.safetensors", "tokenizer.json")
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

    @property
    def size(self) -> int:
        return self.codebook_size * self.num_codebooks

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def level_range(self, level: int) -> tuple[int, int]:
        lo = self.offset + level * self.codebook_size
        return lo, lo + self.codebook_size


def _import_codec_modules() -> None:
    """Register the debug codecs of :mod:`omnitok.vocab.debug` with ``load_codec`` (the codecs of omnitok.codecs
    register when that package is imported, as it is by ``import omnitok``)."""
    import omnitok.vocab.debug  # noqa: F401 -- registers DebugImageCodec and its siblings on import


def _device_of(module: torch.nn.Module) -> torch.device:
    """Where a codec's tensors live (parameters or buffers; cpu when it has none)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def codec_weights_hash(codec: Codec) -> str:
    """The codec's recorded ``weights_sha256``, else the sha256 of its state dict as safetensors bytes."""
    h = getattr(codec, "weights_sha256", None)
    if h:
        return str(h)
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in codec.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()


class Vocabulary:
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
        if audio_pattern not in AUDIO_PATTERNS:
            raise ValueError(f"audio_pattern: expected one of {AUDIO_PATTERNS}, got {audio_pattern!r}")
        for m in entries:
            if m not in MODALITIES:
                raise ValueError(f"codec modality {m!r} unknown; expected one of {MODALITIES}")
        self.specials = specials or SpecialTokens()
        self.audio_pattern = audio_pattern
        self.entries: dict[str, CodecEntry] = {m: entries[m] for m in MODALITIES if m in entries}
        self.codecs: dict[str, Codec] = dict(codecs or {})
        self.size = max([self.specials.size] + [e.stop for e in self.entries.values()])
        self._build_tables()

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
    ) -> Vocabulary:
        """Lay out ids for ``codecs`` (modality -> Codec or codec folder), in the order text, image, audio, video.

        with_mask: add the special ``<|mask|>`` (masked-image training and ``method="masked"`` decoding)."""
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
                _import_codec_modules()
                loaded[m] = load_codec(c)
                sources[m] = Path(c)
            if loaded[m].modality != m:
                raise ValueError(f"codecs[{m!r}] is a {loaded[m].modality} codec ({type(loaded[m]).__name__})")
        entries: dict[str, CodecEntry] = {}
        offset = specials.size
        for m in MODALITIES:
            if m not in loaded:
                continue
            c = loaded[m]
            name = (names or {}).get(m) or (sources[m].name if m in sources else type(c).__name__)
            e = CodecEntry(
                modality=m,
                name=name,
                codec_class=type(c).__name__,
                weights_sha256=codec_weights_hash(c),
                codebook_size=int(c.codebook_size),
                num_codebooks=int(c.num_codebooks),
                offset=offset,
            )
            entries[m] = e
            offset = e.stop
        vocab = cls(entries, specials, audio_pattern, loaded)
        vocab._sources = sources
        return vocab

    def _build_tables(self) -> None:
        sp = self.specials
        V = self.size
        # modality type of every id
        table = np.zeros(V, dtype=np.uint8)
        for m, e in self.entries.items():
            table[e.offset : e.stop] = MODALITY_IDS[m]
        self._modality_table = table
        self._modality_table_t = torch.from_numpy(table)
        self._begin = {m: sp.begin(m) for m in MODALITIES}
        self._end = {m: sp.end(m) for m in MODALITIES}
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
            "codecs": {m: asdict(e) for m, e in self.entries.items()},
        }

    @property
    def hash(self) -> str:
        """sha256 of the layout (special tokens, ranges, codec names and weight hashes)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        ranges = ", ".join(f"{m}=[{e.offset},{e.stop}) n_q={e.num_codebooks}" for m, e in self.entries.items())
        return f"Vocabulary(size={self.size}, specials={self.specials.size}, {ranges}, audio={self.audio_pattern})"

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

    def grammar(self):
        """A fresh :class:`~omnitok.vocab.grammar.GrammarState` at the start of a document."""
        from omnitok.vocab.grammar import GrammarState

        return GrammarState(self)

    # ----- folders ----------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, copy_codecs: bool = True) -> Path:
        """Write ``vocab.json`` (+ each codec folder under ``codecs/<modality>/`` when ``copy_codecs``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if copy_codecs:
            sources = getattr(self, "_sources", {})
            for m, codec in self.codecs.items():
                dest = directory / "codecs" / m
                if m in sources and sources[m].resolve() != dest.resolve():
                    # only the codec files (a training checkpoint folder may also hold optimizer state)
                    tmp = dest.with_name(m + ".tmp")
                    shutil.rmtree(tmp, ignore_errors=True)
                    tmp.mkdir(parents=True)
                    for name in CODEC_FILES:
                        if (sources[m] / name).exists():
                            shutil.copy2(sources[m] / name, tmp / name)
                    shutil.rmtree(dest, ignore_errors=True)
                    os.replace(tmp, dest)
                elif m not in sources:
                    digest = codec.save_pretrained(dest)
                    if digest != self.entries[m].weights_sha256:
                        raise VocabularyError(
                            f"codec {m}: saved weights hash {digest[:12]} differs from the recorded "
                            f"{self.entries[m].weights_sha256[:12]} (was the codec changed after build?)"
                        )
        info = self.to_dict()
        info["hash"] = self.hash
        write_json_atomic(directory / VOCAB_NAME, info)
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
        path = directory / VOCAB_NAME
        if not path.exists():
            raise VocabularyError(f"{directory}: not a vocabulary folder (missing {VOCAB_NAME})")
        try:
            info = json.loads(path.read_text())
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
        vocab = cls(entries, specials, audio_pattern)
        if info.get("hash") and info["hash"] != vocab.hash:
            raise VocabularyError(f"{path}: recorded hash {info['hash'][:12]} != recomputed {vocab.hash[:12]}")
        if not load_codecs and not codecs:
            return vocab
        given = dict(codecs or {})
        _import_codec_modules()
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
        e = self._entry(modality)
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
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        self.codecs[modality] = codec

    # ----- encoding -----------------------------------------------------------------------------
    def _codec(self, modality: str) -> Codec:
        c = self.codecs.get(modality)
        if c is None:
            raise VocabularyError(f"a raw {modality} segment needs the {modality} codec, which is not loaded")
        return c

    @torch.no_grad()
    def fill_codes(self, docs: Sequence[Document] | Document, batch_size: int = 64) -> None:
        """Encode the raw data of every segment without codes, in batches per modality (and data shape)."""
        if isinstance(docs, Document):
            docs = [docs]
        # (modality, data shape) -> segments; shape None: text, or clips of any length for a codec whose
        # encode_many pads them exactly (AudioCodec)
        groups: dict[tuple[str, tuple[int, ...] | None], list[Segment]] = {}
        for doc in docs:
            for seg in doc.segments:
                if isinstance(seg, Uncond) or seg.codes is not None:
                    continue
                if isinstance(seg, Text):
                    if seg.text is None:
                        raise VocabularyError("a Text segment needs text or codes")
                    groups.setdefault(("text", None), []).append(seg)
                    continue
                if seg.data is None:
                    raise VocabularyError(f"a {type(seg).__name__} segment needs data or codes")
                ragged = hasattr(self.codecs.get(seg.modality), "encode_many")
                groups.setdefault((seg.modality, None if ragged else tuple(seg.data.shape)), []).append(seg)
        for (modality, shape), segs in groups.items():
            codec = self._codec(modality)
            if modality == "text":
                for i in range(0, len(segs), batch_size):
                    chunk = segs[i : i + batch_size]
                    for s, c in zip(chunk, codec.encode([s.text for s in chunk])):
                        s.codes = torch.as_tensor(c, dtype=torch.long).reshape(-1)
                continue
            dev = _device_of(codec)
            if shape is None:  # one call: the codec sorts the clips by length and batches them itself
                for s, c in zip(segs, codec.encode_many([s.data.to(dev) for s in segs])):
                    s.codes = c.cpu()
                continue
            for i in range(0, len(segs), batch_size):
                chunk = segs[i : i + batch_size]
                codes = codec.encode(torch.stack([s.data for s in chunk]).to(dev)).cpu()  # (B, *grid, n_q)
                for s, c in zip(chunk, codes):
                    s.codes = c

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
        parts: list[np.ndarray] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        if doc.bos:
            parts.append(np.array([self.specials.bos], dtype=np.int64))
            pos = 1
        for k, seg in enumerate(doc.segments):
            try:
                part = self._encode_segment(seg)
            except VocabularyError as e:
                raise VocabularyError(f"segment {k} ({type(seg).__name__}): {e.reason}") from None
            parts.append(part)
            spans.append((pos, pos + len(part)))
            pos += len(part)
        if doc.eos:
            parts.append(np.array([self.specials.eos], dtype=np.int64))
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return ids, spans

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

    def _lift(self, codes: np.ndarray, e: CodecEntry, what: str) -> np.ndarray:
        """codes (..., n_q) -> vocabulary ids with per-level offsets (checks ranges and n_q)."""
        if codes.shape[-1] != e.num_codebooks:
            raise VocabularyError(f"{what} codes have n_q={codes.shape[-1]}, the codec has {e.num_codebooks}")
        if codes.size and (codes.min() < 0 or codes.max() >= e.codebook_size):
            raise VocabularyError(
                f"{what} codes must lie in [0, {e.codebook_size}), got [{codes.min()}, {codes.max()}]"
            )
        return codes + (e.offset + e.codebook_size * np.arange(e.num_codebooks, dtype=np.int64))

    def _encode_segment(self, seg: Segment) -> np.ndarray:
        sp = self.specials
        if isinstance(seg, Uncond):
            return np.array([sp.uncond], dtype=np.int64)
        m = seg.modality
        e = self._entry(m)
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
            lifted = self._lift(codes, e, "video").reshape(t, h, -1)  # (t, h, w*n_q)
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

    # ----- decoding -------------------------------------------------------------------------------
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
        doc = _Parser(self, arr, partial=errors == "partial").parse()
        if data:
            self.decode_data(doc)
        return doc

    @torch.no_grad()
    def decode_data(self, doc: Document) -> Document:
        """Fill the raw data of every code segment with the codecs (in place; returns doc)."""
        for seg in doc.segments:
            if isinstance(seg, Uncond) or seg.codes is None:
                continue
            codec = self._codec(seg.modality)
            if isinstance(seg, Text):
                seg.text = codec.decode([seg.codes])[0]
                continue
            dev = _device_of(codec)
            seg.data = codec.decode(seg.codes.unsqueeze(0).to(dev))[0].cpu()
        return doc


class _Parser:
    """Strict, vectorised parser of one id sequence (one numpy comparison per segment body)."""

    def __init__(self, vocab: Vocabulary, ids: np.ndarray, partial: bool) -> None:
        self.v = vocab
        self.sp = vocab.specials
        self.ids = ids
        self.n = len(ids)
        self.partial = partial
        self.problems: list[VocabularyError] = []
        self._stops: dict[str, np.ndarray] = {}

    def _next_stop(self, m: str, i: int) -> int:
        """First position >= i whose id cannot be inside a text / audio body (len(ids) when none).

        The stop positions are found once per sequence, so parsing stays O(n log n) however many segments."""
        stops = self._stops.get(m)
        if stops is None:
            e, ids = self.v.entries[m], self.ids
            inside = (ids >= e.offset) & (ids < e.stop)
            if m == "audio":
                inside |= ids == self.sp.delay_pad
            stops = self._stops[m] = np.flatnonzero(~inside)
        k = int(np.searchsorted(stops, i))
        return int(stops[k]) if k < len(stops) else self.n

    def fail(self, pos: int, msg: str) -> VocabularyError:
        return VocabularyError(msg, position=int(pos))

    def name(self, i: int) -> str:
        return "<end of sequence>" if i >= self.n else f"{int(self.ids[i])} ({self.v.token_name(int(self.ids[i]))})"

    def parse(self) -> Document:
        ids, sp = self.ids, self.sp
        doc = Document(segments=[], bos=False, eos=False)
        i = 0
        if self.n and ids[0] == sp.bos:
            doc.bos = True
            i = 1
        starts = {sp.uncond, sp.eos, *self.v._begin_to_modality}
        start_pos: np.ndarray | None = None
        while i < self.n:
            t = int(ids[i])
            try:
                if t == sp.eos:
                    doc.eos = True
                    rest = ids[i + 1 :]
                    bad = np.flatnonzero(rest != sp.pad)
                    if bad.size:
                        j = i + 1 + int(bad[0])
                        raise self.fail(j, f"only padding may follow EOS, got {self.name(j)}")
                    break
                if t == sp.uncond:
                    doc.segments.append(Uncond())
                    i += 1
                    continue
                m = self.v._begin_to_modality.get(t)
                if m is None:
                    raise self.fail(i, f"expected BOS, EOS, UNCOND or a BEGIN token, got {self.name(i)}")
                seg, i = getattr(self, "_" + m)(i)
                doc.segments.append(seg)
            except VocabularyError as e:
                if not self.partial:
                    raise
                self.problems.append(e)
                # resync at the next token that can start a segment
                if start_pos is None:
                    start_pos = np.flatnonzero(np.isin(ids, list(starts)))
                k = int(np.searchsorted(start_pos, i + 1))
                if k == len(start_pos):
                    break
                i = int(start_pos[k])
        doc.problems = self.problems
        return doc

    def _expect_end(self, j: int, m: str, what: str) -> None:
        if j >= self.n or self.ids[j] != self.sp.end(m):
            raise self.fail(j, f"expected END_{m.upper()} after {what}, got {self.name(j)}")

    def _size(self, j: int, base: int, limit: int, what: str) -> int:
        if j >= self.n:
            raise self.fail(j, f"sequence ends before the {what} token")
        k = int(self.ids[j]) - base + 1
        if not 1 <= k <= limit:
            raise self.fail(j, f"expected a {what} token, got {self.name(j)}")
        return k

    def _check_template(self, start: int, lo: np.ndarray, hi: np.ndarray, what: str, reps: int = 1) -> np.ndarray:
        """ids[start : start + reps*len(lo)] must satisfy lo <= id < hi (templates repeated ``reps`` times);
        returns that slice. Only the ids present are compared, so a huge claimed size costs nothing."""
        L = len(lo) * reps
        body = self.ids[start : start + L]
        n = len(body)
        if reps > 1:
            lo, hi = np.resize(lo, n), np.resize(hi, n)
        ok = (body >= lo[:n]) & (body < hi[:n])
        if not ok.all():
            k = int(np.argmin(ok))
            raise self.fail(start + k, f"{what}: expected an id in [{lo[k]}, {hi[k]}), got {self.name(start + k)}")
        if n < L:
            raise self.fail(self.n, f"{what}: sequence ends {L - n} ids early")
        return body

    def _row_template(self, e: CodecEntry, w: int) -> tuple[np.ndarray, np.ndarray]:
        lv_lo = e.offset + e.codebook_size * np.arange(e.num_codebooks, dtype=np.int64)
        lo = np.concatenate([np.tile(lv_lo, w), [self.sp.eor]])
        hi = np.concatenate([np.tile(lv_lo + e.codebook_size, w), [self.sp.eor + 1]])
        return lo, hi

    def _text(self, i: int) -> tuple[Segment, int]:
        e = self.v.entries["text"]
        j = self._next_stop("text", i + 1)
        self._expect_end(j, "text", "text ids")
        return Text(codes=codes_tensor(self.ids[i + 1 : j] - e.offset)), j + 1

    def _image(self, i: int) -> tuple[Segment, int]:
        e, sp = self.v.entries["image"], self.sp
        h = self._size(i + 1, sp.height_base, sp.max_height, "height")
        w = self._size(i + 2, sp.width_base, sp.max_width, "width")
        lo, hi = self._row_template(e, w)
        start = i + 3
        body = self._check_template(start, lo, hi, f"image {h}x{w}", reps=h)
        j = start + len(body)
        self._expect_end(j, "image", f"{h} rows (the size tokens say {h}x{w})")
        grid = body.reshape(h, -1)[:, :-1].reshape(h, w, e.num_codebooks)
        return Image(codes=codes_tensor(self._lower(grid, e))), j + 1

    def _video(self, i: int) -> tuple[Segment, int]:
        e, sp = self.v.entries["video"], self.sp
        t = self._size(i + 1, sp.frames_base, sp.max_frames, "frames")
        h = self._size(i + 2, sp.height_base, sp.max_height, "height")
        w = self._size(i + 3, sp.width_base, sp.max_width, "width")
        lo, hi = self._row_template(e, w)
        flo = np.concatenate([np.tile(lo, h), [sp.eof]])
        fhi = np.concatenate([np.tile(hi, h), [sp.eof + 1]])
        start = i + 4
        body = self._check_template(start, flo, fhi, f"video {t}x{h}x{w}", reps=t)
        j = start + len(body)
        self._expect_end(j, "video", f"{t} frames (the size tokens say {t}x{h}x{w})")
        frames = body.reshape(t, -1)[:, :-1].reshape(t, h, -1)[:, :, :-1].reshape(t, h, w, e.num_codebooks)
        return Video(codes=codes_tensor(self._lower(frames, e))), j + 1

    def _audio(self, i: int) -> tuple[Segment, int]:
        e, sp = self.v.entries["audio"], self.sp
        n_q = e.num_codebooks
        delay = self.v.audio_pattern == "delay" and n_q > 1
        j = self._next_stop("audio", i + 1)
        L = j - (i + 1)
        steps = L // n_q
        T = steps - n_q + 1 if delay else steps
        if T < 1 or L % n_q:
            # the stream is too short or cut mid-step: name the END (or the end of the sequence)
            need = "a multiple of n_q" if L % n_q else "at least one time step"
            raise self.fail(j, f"audio stream of {L} ids is not {need} (n_q={n_q}, {self.v.audio_pattern})")
        lv_lo = e.offset + e.codebook_size * np.arange(n_q, dtype=np.int64)
        lo = np.tile(lv_lo, steps)
        hi = lo + e.codebook_size
        if delay:
            _, valid = patterns._delay_index(T, n_q)
            valid = valid.reshape(-1)
            lo = np.where(valid, lo, sp.delay_pad)
            hi = np.where(valid, hi, sp.delay_pad + 1)
        body = self._check_template(i + 1, lo, hi, f"audio ({self.v.audio_pattern}, n_q={n_q})")
        self._expect_end(j, "audio", "the audio stream")
        grid = patterns.from_stream(body, "delay" if delay else "flatten", n_q)
        return Audio(codes=codes_tensor(self._lower(grid, e))), j + 1

    @staticmethod
    def _lower(grid: np.ndarray, e: CodecEntry) -> np.ndarray:
        return grid - (e.offset + e.codebook_size * np.arange(e.num_codebooks, dtype=np.int64))

