"""``omnitok tokenize``: encode a built dataset into token shards for one task (offline, as LlamaGen does).

    omnitok tokenize --vocab runs/vocab --data digits:caption2image --out runs/tokens/digits-c2i
    omnitok tokenize --vocab runs/vocab --codecs text=runs/bpe,image=runs/emoji64 --data emoji --out ...
    torchrun --nproc-per-node 4 -m omnitok.cli tokenize ...     # each rank tokenises its own part

When ``--vocab DIR`` does not exist yet, ``--codecs modality=DIR,...`` builds the vocabulary and saves it there.

Tasks (document = BOS, condition segment(s), target segment, EOS; the index records the condition span so the
mixture loader can apply classifier-free-guidance dropout at load time):

==================  ==========================  =====================================================
task                datasets                    segments
==================  ==========================  =====================================================
caption2image       digits, emoji               Text(caption) -> Image
image2caption       digits, emoji               Image -> Text(caption)
image               digits, emoji               Image (no condition)
image2speech        digits                      Image -> Audio (a spoken digit of the same label, from
                                                the built ``speech`` dataset)
speech2image        digits                      Audio (spoken digit) -> Image
interleaved         digits                      Text(caption) Image Audio(spoken digit) Text(transcript)
transcript2speech   speech                      Text(transcript) -> Audio (the meta's ``prompt`` when the
                                                speech was built with voice_prompt=1: "[voice: slt] ...")
speech2transcript   speech                      Audio -> Text(transcript)
speech              speech                      Audio
caption2video       video                       Text(caption) -> Video
video2caption       video                       Video -> Text(caption): its digit and direction of motion
video               video                       Video
text                text, (any with captions)   Text
continuation        text                        Text(first part) -> Text(rest), cut at a word boundary
==================  ==========================  =====================================================
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from omnitok.data.token_shards import TokenShardWriter
from omnitok.data.types import Example
from omnitok.vocab.document import TASKS, Audio, Document, Image, Text, Video
from omnitok.vocab.media import encode_media
from omnitok.vocab.special import MODALITY_IDS
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["DATASET_TASKS", "CodeCache", "add_arguments", "build_document", "continuation_split", "run",
           "tokenize_dataset"]

#: dataset -> (default task, tasks it supports)
DATASET_TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "digits": ("caption2image", ("caption2image", "image2caption", "image", "image2speech", "speech2image",
                                 "interleaved", "text")),
    "emoji": ("caption2image", ("caption2image", "image2caption", "image", "text")),
    "speech": ("transcript2speech", ("transcript2speech", "speech2transcript", "speech", "text")),
    "video": ("caption2video", ("caption2video", "video2caption", "video", "text")),
    "text": ("text", ("text", "continuation")),
}
#: tasks whose documents pair an example with one of another dataset
CROSS_TASKS = {"image2speech": "speech", "speech2image": "speech", "interleaved": "speech"}

EXTS = {"image": ("png", "jpg", "jpeg", "webp"), "audio": ("flac", "wav"), "video": ("mp4",), "text": ("txt",)}


# ----- examples -> documents ---------------------------------------------------------------------------
class CodeCache:
    """Remembers the codes of every media tensor a vocabulary's codecs encode (keyed by a hash of the tensor's
    bytes and shape), so tasks that share media (caption2image and image2caption, transcript2speech and
    speech2transcript, image2speech and speech2image) encode each image or clip once.

    ``CodeCache().install(vocab)`` wraps the ``encode`` (and, for the audio codec, ``encode_many``) of each loaded
    media codec in place; both paths share one store, and codes equal those of the plain codec (encoding is per
    example: codecs in eval mode have no batch-dependent layers, and ``encode_many`` pads exactly).
    """

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def install(self, vocab: Vocabulary) -> CodeCache:
        for modality, codec in vocab.codecs.items():
            if modality != "text" and not getattr(codec.encode, "_code_cache", False):
                codec.encode = self._wrap(modality, codec.encode)
            if hasattr(codec, "encode_many") and not getattr(codec.encode_many, "_code_cache", False):
                codec.encode_many = self._wrap_many(modality, codec.encode_many)
        return self

    def _key(self, modality: str, x: torch.Tensor) -> tuple[str, str]:
        x = x.detach().cpu().contiguous()
        return modality, hashlib.sha1(x.numpy().tobytes()).hexdigest() + str(tuple(x.shape))

    def _lookup(self, keys: list[tuple[str, str]], compute: Any) -> list[torch.Tensor]:
        """The stored codes of ``keys``; ``compute(missing indices)`` encodes the ones not stored yet."""
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            for i, c in zip(missing, compute(missing)):
                self.store[keys[i]] = c.cpu()
        return [self.store[k] for k in keys]

    def _wrap(self, modality: str, inner: Any) -> Any:
        def encode(x: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(x, torch.Tensor) or args or kwargs or x.dim() < 2:
                return inner(x, *args, **kwargs)
            keys = [self._key(modality, r) for r in x]
            return torch.stack(self._lookup(keys, lambda missing: inner(x[missing])))

        encode._code_cache = True  # type: ignore[attr-defined]
        return encode

    def _wrap_many(self, modality: str, inner: Any) -> Any:
        def encode_many(clips: Any, *args: Any, **kwargs: Any) -> Any:
            if args or kwargs:
                return inner(clips, *args, **kwargs)
            keys = [self._key(modality, c) for c in clips]
            return self._lookup(keys, lambda missing: inner([clips[i] for i in missing]))

        encode_many._code_cache = True  # type: ignore[attr-defined]
        return encode_many


def _caption(meta: dict[str, Any]) -> str:
    return str(meta.get("caption") or meta.get("transcript") or "")


def _file(example: Example, kind: str) -> bytes | None:
    for ext in EXTS[kind]:
        if ext in example.files:
            return example.files[ext]
    return None


def _decode(example: Example, kind: str, image_size: int | None, sample_rate: int | None,
            video_size: int | None = None, video_frames: int | None = None) -> torch.Tensor:
    from omnitok.io.audio import decode_audio
    from omnitok.io.image import decode_image
    from omnitok.io.video import decode_video

    data = _file(example, kind)
    if data is None:
        raise ValueError(f"example {example.key}: no {kind} file (has {sorted(example.files)})")
    if kind == "image":
        return decode_image(data, image_size, name=example.key)
    if kind == "audio":
        return decode_audio(data, sample_rate, name=example.key)[0]
    if kind == "video":
        frames = decode_video(data, video_size, video_frames, name=example.key)  # (T, 3, H, W)
        return frames.permute(1, 0, 2, 3).contiguous()  # (3, T, H, W), the layout every video codec takes
    raise ValueError(kind)


def continuation_split(text: str, key: str) -> tuple[str, str]:
    """Cut at a word boundary between 20% and 60% of the text (chosen by a hash of the key)."""
    spaces = [i for i, c in enumerate(text) if c == " "]
    lo, hi = int(len(text) * 0.2), int(len(text) * 0.6)
    cands = [i for i in spaces if lo <= i <= hi] or spaces
    if not cands:
        cut = len(text) // 2
    else:
        h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
        cut = cands[h % len(cands)]
    return text[:cut], text[cut:]


def build_document(task: str, example: Example, *, partner: Example | None = None, image_size: int | None = None,
                   sample_rate: int | None = None, video_size: int | None = None,
                   video_frames: int | None = None) -> tuple[Document, int]:
    """One example (and its partner for cross-dataset tasks) -> (raw document, number of condition segments)."""
    meta = example.meta
    dec = lambda ex, kind: _decode(ex, kind, image_size, sample_rate, video_size, video_frames)  # noqa: E731
    if task == "text":
        raw = _file(example, "text")
        text = raw.decode("utf-8") if raw is not None else _caption(meta)
        return Document([Text(text)], task=task), 0
    if task == "continuation":
        raw = _file(example, "text")
        text = raw.decode("utf-8") if raw is not None else _caption(meta)
        a, b = continuation_split(text, example.key)
        return Document([Text(a), Text(b)], task=task), 1
    if task == "caption2image":
        return Document([Text(_caption(meta)), Image(dec(example, "image"))], task=task), 1
    if task == "image2caption":
        return Document([Image(dec(example, "image")), Text(_caption(meta))], task=task), 1
    if task == "image":
        return Document([Image(dec(example, "image"))], task=task), 0
    if task == "transcript2speech":
        prompt = str(meta.get("prompt") or _caption(meta))  # a prompt that names the voice, when built with one
        return Document([Text(prompt), Audio(dec(example, "audio"))], task=task), 1
    if task == "speech2transcript":
        return Document([Audio(dec(example, "audio")), Text(_caption(meta))], task=task), 1
    if task == "speech":
        return Document([Audio(dec(example, "audio"))], task=task), 0
    if task == "caption2video":
        return Document([Text(_caption(meta)), Video(dec(example, "video"))], task=task), 1
    if task == "video2caption":
        return Document([Video(dec(example, "video")), Text(_caption(meta))], task=task), 1
    if task == "video":
        return Document([Video(dec(example, "video"))], task=task), 0
    if task == "interleaved":  # caption, the digit, the spoken digit, its transcript (no condition)
        if partner is None:
            raise ValueError(f"task {task} needs a spoken-digit partner for {example.key}")
        segs = [Text(_caption(meta)), Image(dec(example, "image")), Audio(dec(partner, "audio")),
                Text(_caption(partner.meta))]
        return Document(segs, task=task), 0
    if task in ("image2speech", "speech2image"):
        if partner is None:
            raise ValueError(f"task {task} needs a spoken-digit partner for {example.key}")
        img, aud = Image(dec(example, "image")), Audio(dec(partner, "audio"))
        return Document([img, aud] if task == "image2speech" else [aud, img], task=task), 1
    raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")


def spoken_digits(split: str, root: str | os.PathLike | None = None) -> dict[int, list[Example]]:
    """Single spoken digits of the built ``speech`` dataset, grouped by digit (for image <-> speech pairs)."""
    from omnitok.data.dataset import ShardDataset

    groups: dict[int, list[Example]] = defaultdict(list)
    for ex in ShardDataset("speech", split, root=root, decode=False, rank=0, world_size=1):
        d = str(ex.meta.get("digits", ""))
        if ex.meta.get("kind") == "digits" and len(d) == 1 and d.isdigit():
            groups[int(d)].append(ex)
    if not groups:
        raise ValueError(f"the speech dataset ({split}) holds no single spoken digits to pair with images")
    return groups


def pick_partner(example: Example, groups: dict[int, list[Example]]) -> Example:
    """The spoken digit paired with a digit image: same label, chosen by a hash of the image key."""
    label = int(example.meta["label"])
    cands = groups.get(label)
    if not cands:
        raise ValueError(f"{example.key}: no spoken digit {label} to pair with")
    h = int.from_bytes(hashlib.sha256(example.key.encode()).digest()[:4], "big")
    return cands[h % len(cands)]


# ----- the pipeline ------------------------------------------------------------------------------------------
def shard_meta(vocab: Vocabulary) -> dict[str, Any]:
    """What the mixture loader needs without the vocabulary: pad/uncond ids and modality ranges."""
    return {
        "pad_id": vocab.pad_id,
        "uncond_id": vocab.uncond_id,
        "modality_ranges": [[e.offset, e.stop, MODALITY_IDS[m]] for m, e in vocab.entries.items()],
        "codecs": {m: {"name": e.name, "weights_sha256": e.weights_sha256} for m, e in vocab.entries.items()},
    }


def _batches(items: Iterable[Example], size: int) -> Iterator[list[Example]]:
    batch: list[Example] = []
    for it in items:
        batch.append(it)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tokenize_dataset(
    vocab: Vocabulary,
    examples: Iterable[Example],
    out: str | os.PathLike,
    task: str,
    *,
    batch_size: int = 32,
    shard_tokens: int = 1 << 24,
    rank: int = 0,
    world_size: int = 1,
    partners: dict[int, list[Example]] | None = None,
    image_size: int | None = None,
    sample_rate: int | None = None,
    video_size: int | None = None,
    video_frames: int | None = None,
    meta: dict[str, Any] | None = None,
    total: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    views: int = 1,
    shift: int = 0,
) -> dict[str, Any]:
    """Encode raw examples (this rank's part) into token shards; resumes a killed run. Returns the stats.

    ``views`` > 1 writes each document with images that many times, views after the first translated by up to
    ``shift`` pixels (:mod:`omnitok.data.augment`; for training splits).
    """
    from tqdm.auto import tqdm

    from omnitok.data.augment import image_views

    if task not in TASKS or task == "none":
        raise ValueError(f"task: expected one of {sorted(set(TASKS) - {'none'})}, got {task!r}")
    if views < 1 or shift < 0 or (views > 1 and shift == 0):
        raise ValueError(f"views must be >= 1 and shift >= 0 (> 0 when views > 1), got views={views} shift={shift}")
    writer = TokenShardWriter(
        out, vocab_hash=vocab.hash, vocab_size=vocab.size, task=task, rank=rank, world_size=world_size,
        shard_tokens=shard_tokens, meta={**shard_meta(vocab), **(meta or {})}, overwrite=overwrite,
    )
    if writer.complete:
        return {"examples": 0, "documents": writer.part["documents"], "tokens": writer.part["tokens"],
                "skipped": 0, "seconds": 0.0, "examples_per_s": 0.0, "resumed": True}
    skip = writer.examples_done
    task_id = TASKS[task]
    n_ex = n_docs = n_tok = n_bad = 0
    t0 = time.perf_counter()
    bar = tqdm(total=total, initial=skip, desc=f"tokenize {task} r{rank}", unit="ex", disable=not progress)
    it = iter(examples)
    for _ in range(skip):  # resuming: these went into finished shards
        next(it, None)
    for batch in _batches(it, batch_size):
        docs: list[tuple[Document, int]] = []
        for ex in batch:
            try:
                partner = pick_partner(ex, partners) if partners is not None else None
                doc, n_cond = build_document(task, ex, partner=partner, image_size=image_size,
                                             sample_rate=sample_rate, video_size=video_size,
                                             video_frames=video_frames)
                docs += [(d, n_cond) for d in image_views(doc, ex.key, views, shift)]
            except (ValueError, KeyError) as e:
                n_bad += 1
                bar.write(f"skipping {ex.key}: {e}")
        encode_media(vocab.codecs, [d for d, _ in docs], batch_size=batch_size)  # the codecs run here, batched
        for doc, n_cond in docs:
            ids, spans = vocab.encode_with_spans(doc)
            cond = (spans[0][0], spans[n_cond - 1][1]) if n_cond else (0, 0)
            writer.add(ids, cond, task_id)
            n_docs += 1
            n_tok += len(ids)
        writer.end_batch(len(batch))
        n_ex += len(batch)
        bar.update(len(batch))
    writer.close()
    bar.close()
    dt = time.perf_counter() - t0
    return {"examples": n_ex, "documents": n_docs, "tokens": n_tok, "skipped": n_bad, "seconds": dt,
            "examples_per_s": n_ex / dt if dt > 0 else 0.0, "resumed": skip > 0}


# ----- CLI ------------------------------------------------------------------------------------------------------
def parse_codecs(spec: str | None) -> dict[str, str]:
    """``text=DIR,image=DIR`` -> {"text": DIR, "image": DIR}."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m, sep, d = part.partition("=")
        if not sep or not d:
            raise ValueError(f"--codecs: expected modality=DIR pairs like text=runs/bpe, got {part!r}")
        out[m.strip()] = d.strip()
    return out


def load_or_build_vocab(vocab_dir: str | os.PathLike, codecs: dict[str, str], *, audio_pattern: str = "delay",
                        max_height: int = 64, max_width: int = 64, max_frames: int = 64,
                        accept_hash_mismatch: bool = False, rank: int = 0, wait_s: float = 600.0,
                        with_mask: bool = False, share_image_ids: bool = False) -> Vocabulary:
    vocab_dir = Path(vocab_dir)
    if rank > 0 and codecs and not (vocab_dir / "vocab.json").exists():
        # under torchrun rank 0 builds the vocabulary; the others wait for it
        deadline = time.monotonic() + wait_s
        while not (vocab_dir / "vocab.json").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {rank}: {vocab_dir}/vocab.json did not appear within {wait_s:.0f} s")
            time.sleep(0.5)
    if (vocab_dir / "vocab.json").exists():
        vocab = Vocabulary.load(vocab_dir, codecs=codecs or None, accept_hash_mismatch=accept_hash_mismatch)
        if with_mask and vocab.specials.mask is None:
            raise ValueError(f"{vocab_dir} was built without <|mask|>; build a new vocabulary with it (the ids shift)")
        return vocab
    if not codecs:
        raise ValueError(f"--vocab {vocab_dir} does not exist yet: pass --codecs text=DIR,image=DIR,... to build it")
    vocab = Vocabulary.build(codecs, audio_pattern=audio_pattern, max_height=max_height, max_width=max_width,
                             max_frames=max_frames, with_mask=with_mask, share_image_ids=share_image_ids)
    vocab.save(vocab_dir)
    print(f"built {vocab} -> {vocab_dir}")
    return vocab


def codec_preset_data(vocab_dir: str | os.PathLike, codecs: dict[str, str], modality: str) -> dict[str, Any]:
    """The ``preset.data`` a codec was trained with (its config.json), or {} when not recorded."""
    import json

    folder = Path(codecs[modality]) if modality in codecs else Path(vocab_dir) / "codecs" / modality
    try:
        cfg = json.loads((folder / "config.json").read_text())
        data = (cfg.get("preset") or {}).get("data") or {}
        return dict(data) if isinstance(data, dict) else {}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def codec_input_size(vocab_dir: str | os.PathLike, codecs: dict[str, str], modality: str) -> int | None:
    """The image / frame side a codec was trained on (``preset.data.size`` in its config.json), if recorded."""
    size = codec_preset_data(vocab_dir, codecs, modality).get("size")
    return int(size) if isinstance(size, (int, float)) and size else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab", required=True, help="vocabulary folder (built here from --codecs if missing)")
    parser.add_argument("--data", required=True, help="NAME[:TASK], e.g. digits:caption2image (dataset name or folder)")
    parser.add_argument("--out", required=True, help="output token-shard folder")
    parser.add_argument("--codecs", default=None, help="modality=DIR,... codec folders (build or override)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--root", default=None, help="omnitok cache root (default $OMNITOK_HOME or ~/.cache/omnitok)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda:0 ...")
    parser.add_argument("--limit", type=int, default=None, help="tokenise at most this many examples (per rank)")
    parser.add_argument("--shard-tokens", type=int, default=1 << 24, help="ids per token shard")
    parser.add_argument("--image-size", type=int, default=None,
                        help="resize images / video frames (square; default: the size the codec was trained on)")
    parser.add_argument("--sample-rate", type=int, default=None, help="resample audio (Hz; default: the codec's)")
    parser.add_argument("--frames", type=int, default=None,
                        help="video frames kept per clip (default: the number the video codec was trained on)")
    parser.add_argument("--audio-pattern", default="delay", choices=["delay", "flatten"], help="when building")
    parser.add_argument("--max-size", type=int, default=64, help="largest code-grid height/width/frames (building)")
    parser.add_argument("--with-mask", action="store_true",
                        help="the vocabulary gets a <|mask|> id (masked-image training and decoding; building)")
    parser.add_argument("--share-image-ids", action="store_true",
                        help="a video codec's rows coded by the image codec (a sprite codec's window) take the image "
                             "codec's ids (building)")
    parser.add_argument("--accept-hash-mismatch", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    parser.add_argument("--views", type=int, default=1,
                        help="write each document with images this many times (augmented training split)")
    parser.add_argument("--shift", type=int, default=0, help="largest translation in pixels of the extra views")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from omnitok.codecs.base import select_device
    from omnitok.data.dataset import ShardDataset

    name, _, task = args.data.partition(":")
    base = Path(name).name
    default, allowed = DATASET_TASKS.get(base, ("text", tuple(TASKS)))
    task = task or default
    if task not in allowed:
        raise SystemExit(f"omnitok tokenize: dataset {base!r} supports tasks {allowed}, not {task!r}")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    vocab = load_or_build_vocab(args.vocab, parse_codecs(args.codecs), audio_pattern=args.audio_pattern,
                                max_height=args.max_size, max_width=args.max_size, max_frames=args.max_size,
                                accept_hash_mismatch=args.accept_hash_mismatch, rank=rank, with_mask=args.with_mask,
                                share_image_ids=args.share_image_ids)
    image_size = args.image_size or codec_input_size(args.vocab, parse_codecs(args.codecs), "image")
    video_size = args.image_size or codec_input_size(args.vocab, parse_codecs(args.codecs), "video")
    sample_rate = args.sample_rate or getattr(vocab.codecs.get("audio"), "sample_rate", None)
    device = select_device(args.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    for codec in vocab.codecs.values():
        codec.to(device).eval()
    ds = ShardDataset(name, args.split, root=args.root, decode=False, rank=rank, world_size=world)
    examples: Iterable[Example] = ds
    if args.limit is not None:
        examples = islice(ds, args.limit)
    partners = spoken_digits(args.split, args.root) if task in CROSS_TASKS else None
    total = None
    try:
        from omnitok.data.build import load_card

        card = load_card(base, args.root) if not Path(name).exists() else None
        if card:
            total = int(card["counts"][args.split]) // world
    except (KeyError, TypeError, ValueError):
        total = None
    if args.limit is not None:
        total = min(total or args.limit, args.limit)
    stats = tokenize_dataset(
        vocab, examples, args.out, task, batch_size=args.batch_size, shard_tokens=args.shard_tokens, rank=rank,
        world_size=world, partners=partners, image_size=image_size, sample_rate=sample_rate, video_size=video_size,
        video_frames=args.frames or codec_preset_data(args.vocab, parse_codecs(args.codecs), "video").get("frames"),
        meta={"dataset": name, "split": args.split, "vocab_dir": str(Path(args.vocab).resolve())},
        total=total, progress=not args.no_progress, overwrite=args.overwrite, views=args.views, shift=args.shift,
    )
    print(
        f"tokenised {stats['examples']} examples of {name}:{task} ({args.split}) -> {stats['documents']} documents, "
        f"{stats['tokens']} ids in {stats['seconds']:.1f} s ({stats['examples_per_s']:.1f} examples/s, "
        f"{device}){' [resumed]' if stats['resumed'] else ''}; skipped {stats['skipped']}"
    )
    return 0

