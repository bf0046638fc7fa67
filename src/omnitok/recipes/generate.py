"""``omnitok generate``: any modality from a text prompt or a media file, streamed as it is generated.

::

    omnitok generate "a red apple" --to image --ckpt runs/lm --vocab runs/vocab --out apple.png
    omnitok generate --from apple.png --to text --ckpt runs/lm --vocab runs/vocab
    omnitok generate --from speech.wav --to text --ckpt runs/lm --vocab runs/vocab
    omnitok generate "hello there" --to audio --out hello.wav ...
    omnitok generate "a moving digit four" --to video --out four.mp4 ...

Text is printed as it is generated; an image is previewed row by row (each completed row is decoded and the
partial image written to ``--preview``, by default the ``--out`` file itself, which the final image replaces).

The model and its vocabulary load as :mod:`omnitok.generation.loading` says (``--vocab``, else the folder the
checkpoint records or finds beside it; the vocabulary hash is checked when the checkpoint records one).
``--method diffusion`` runs a diffusion model folder (:class:`omnitok.generation.diffusion.DiffusionPipeline`),
``--method hybrid`` a Transfusion folder (:mod:`omnitok.generation.hybrid`). This is a recipe: it reads and
writes media files and sees every layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from omnitok.codecs.base import select_device
from omnitok.data.tokenize import codec_input_size
from omnitok.eval.diffusion import load_pipeline
from omnitok.generation.constraints import step_table
from omnitok.generation.generate import (
    MODALITY_DEFAULTS,
    check_grid,
    default_grid,
    generate,
    recorded_defaults,
)
from omnitok.generation.hybrid import HybridPipeline
from omnitok.generation.loading import find_vocab, load_model
from omnitok.io.audio import encode_audio, read_audio
from omnitok.io.image import load_image, resize_tensor, save_image
from omnitok.io.video import load_video, save_video
from omnitok.vocab.document import Audio, Image, Segment, Text, Video

__all__ = ["add_arguments", "find_vocab", "load_media", "load_model", "parse_grid", "run", "save_output"]

MEDIA = {".png": "image", ".jpg": "image", ".jpeg": "image", ".webp": "image", ".wav": "audio", ".flac": "audio",
         ".ogg": "audio", ".mp4": "video"}
OUT_SUFFIX = {"image": ".png", "audio": ".wav", "video": ".mp4"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="?", default=None, help="text prompt (condition)")
    parser.add_argument("--from", dest="source", action="append", default=[],
                        help="a media file used as condition (.png/.jpg, .wav/.flac, .mp4); repeatable")
    parser.add_argument("--to", dest="produce", required=True, choices=sorted(MODALITY_DEFAULTS),
                        help="modality to generate")
    parser.add_argument("--ckpt", required=True, help="model folder, training checkpoint or run folder")
    parser.add_argument("--vocab", default=None, help="vocabulary folder (default: recorded by the checkpoint)")
    parser.add_argument("--out", default=None, help="output file (.png / .wav / .mp4; text: .txt, else stdout)")
    parser.add_argument("--grid", default=None,
                        help="image HxW, video TxHxW, audio T (time steps); default: the grid the model was trained "
                             "on (its generation_config.json; `omnitok info CKPT` shows it)")
    parser.add_argument("--until-end", action="store_true",
                        help="audio: the model ends the speech itself; --grid T (or --max-new-tokens) is the cap")
    parser.add_argument("--cfg", dest="cfg_scale", type=float, default=None, help="guidance scale (1 = off)")
    parser.add_argument("--cfg-schedule", default="constant", choices=["constant", "linear"])
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--best-of", type=int, default=1,
                        help="draw N candidates per sample and keep the one the model scores best by the reverse "
                             "task (log p(prompt | candidate); generation/rerank.py)")
    parser.add_argument("--rerank", default="reverse", choices=["reverse", "joint"],
                        help="--best-of score: reverse = log p(prompt | candidate), joint = + log p(candidate | "
                             "prompt)")
    parser.add_argument("--method", default="cached",
                        choices=["cached", "jacobi", "naive", "masked", "diffusion", "hybrid"],
                        help="decoder: static KV cache, speculative Jacobi (image/video/audio), the naive loop, or "
                             "masked parallel decoding (images, from a model trained with masked-image documents); "
                             "diffusion: --ckpt is a diffusion model (omnitok train diffusion), --to image only; "
                             "hybrid: --ckpt is a Transfusion model (omnitok train transfusion), --to image from a "
                             "prompt or --to text --from an image")
    parser.add_argument("--steps", type=int, default=None,
                        help="diffusion, hybrid: denoising steps (default 20); masked: forwards per image "
                             "(default 12)")
    parser.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "euler"],
                        help="diffusion, hybrid: DDIM, DDPM ancestral or flow-matching Euler (one trained model "
                             "serves all)")
    parser.add_argument("--eta", type=float, default=0.0, help="diffusion, DDIM: 0 deterministic, 1 DDPM-like")
    parser.add_argument("--preview", default=None, help="image preview file (default: --out), updated per row")
    parser.add_argument("--no-stream", action="store_true", help="do not print text / preview rows as they come")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0 = torch's default; 1 is much faster on a busy machine)")


#: an image side above which ``--from`` refuses a picture when the codec records no input size of its own
#: (a codec's attention over a 4000 x 4000 input would ask for terabytes)
MAX_UNSIZED_SIDE = 512


def load_media(path: str, vocab, image_size: int | None = None) -> Segment:
    """A media file -> a raw segment the vocabulary's codec encodes (Image / Audio / Video).

    image_size: the side the image codec was trained on; a picture of another size is resized to it (with a
    note on stderr). Without it, a picture larger than ``MAX_UNSIZED_SIDE`` is refused."""
    p = Path(path)
    kind = MEDIA.get(p.suffix.lower())
    if kind is None:
        raise ValueError(f"--from {path}: unsupported file type {p.suffix!r}; expected one of {sorted(MEDIA)}")
    if not p.is_file():
        raise ValueError(f"--from {path}: no such file")
    codec = vocab.codecs.get(kind)
    if codec is None:
        raise ValueError(f"--from {path}: the vocabulary has no {kind} codec loaded")
    cfg = getattr(codec, "config", {}) or {}
    if kind == "image":
        x = load_image(p, int(cfg.get("in_channels", 3)))  # (C, H, W)
        H, W = x.shape[-2:]
        if image_size and (image_size, image_size) != (H, W):
            print(f"note: --from {path}: {W} x {H} pixels resized to the {image_size} x {image_size} the image "
                  "codec was trained on", file=sys.stderr)
            x = resize_tensor(x, image_size)
        elif not image_size and max(H, W) > MAX_UNSIZED_SIDE:
            raise ValueError(f"--from {path}: {W} x {H} pixels is larger than {MAX_UNSIZED_SIDE} px and the image "
                             "codec records no input size to resize to; resize the picture first")
        return Image(data=x)
    if kind == "audio":
        if hasattr(codec, "load_audio"):
            return Audio(data=codec.load_audio(p)[0])  # (1, T)
        x, _ = read_audio(str(p), target_sr=int(getattr(codec, "sample_rate", 16000)), name=str(p))
        return Audio(data=torch.from_numpy(x)[None])
    x, _ = load_video(p, int(cfg.get("in_channels", 3)))  # (C, T, H, W)
    return Video(data=x)  # (C, T, H, W): every video codec's layout


def save_output(seg: Segment, path: Path, vocab) -> None:
    """Write a decoded segment: PNG for images, WAV/FLAC for audio, MP4 for video, text as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(seg, Text):
        path.write_text((seg.text or "") + "\n")
        return
    if seg.data is None:
        raise ValueError(f"cannot write {path}: the {seg.modality} codec is not loaded, only codes were generated")
    if isinstance(seg, Image):
        save_image(seg.data, path)
    elif isinstance(seg, Audio):
        sr = int(getattr(vocab.codecs["audio"], "sample_rate", 16000))
        fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
        path.write_bytes(encode_audio(seg.data.reshape(-1).float().numpy(), sr, format=fmt, name=str(path)))
    elif isinstance(seg, Video):
        save_video(seg.data, path)  # (C, T, H, W)


class _Streamer:
    """on_token callback: prints text as it comes; decodes completed image rows into a preview file."""

    def __init__(self, vocab, produce: str, grid: tuple[int, ...] | None, preview: Path | None) -> None:
        self.vocab, self.produce, self.grid, self.preview = vocab, produce, grid, preview
        self.ids: list[int] = []
        self.printed = ""
        self.rows_done = 0
        self.finished = False
        self.bar = None
        if produce in ("audio", "video"):  # no partial output to show: a progress bar instead
            self.bar = tqdm(total=step_table(vocab, produce, grid).num_steps, desc=f"generate {produce}",
                            unit="tok", file=sys.stderr, dynamic_ncols=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, step: int, ids: torch.Tensor) -> None:
        if self.bar is not None:
            self.bar.update(1)
        i = int(ids[0])
        if self.finished:
            return
        if self.produce == "text":
            if i == self.vocab.end_id("text"):
                self.finished = True
                return
            self.ids.append(i)
            codec = self.vocab.codecs.get("text")
            if codec is None:
                return
            off = self.vocab.entries["text"].offset
            text = codec.decode([torch.tensor(self.ids) - off])[0]
            if text.startswith(self.printed) and not text.endswith("\ufffd"):
                sys.stdout.write(text[len(self.printed):])
                sys.stdout.flush()
                self.printed = text
        elif self.produce == "image" and self.preview is not None:
            self.ids.append(i)
            if i == self.vocab.specials.eor:
                self._preview()

    def _preview(self) -> None:
        codec = self.vocab.codecs.get("image")
        if codec is None:
            return
        e = self.vocab.entries["image"]
        h, w = self.grid
        body = [t for t in self.ids if e.offset <= t < e.stop]
        rows = len(body) // (w * e.num_codebooks)
        if rows <= self.rows_done:
            return
        self.rows_done = rows
        grid = torch.tensor(body[: rows * w * e.num_codebooks]).reshape(rows, w, e.num_codebooks)
        grid = grid - (e.offset + e.codebook_size * torch.arange(e.num_codebooks))
        try:
            with torch.no_grad():
                dev = next(iter(codec.parameters()), torch.empty(0)).device
                img = codec.decode(grid[None].to(dev))[0].cpu()  # (3, rows*f, W)
        except Exception:  # a codec that cannot decode a partial grid simply gets no preview
            return
        save_image(img, self.preview)
        print(f"\rpreview: {rows}/{h} rows -> {self.preview}", end="", file=sys.stderr, flush=True)


def parse_grid(text: str, produce: str) -> tuple[int, ...]:
    """``--grid``: ``HxW`` (image), ``TxHxW`` (video), ``T`` (audio frames) -> ints, or a ValueError that says so."""
    want = {"image": "HxW, e.g. 4x4", "video": "TxHxW, e.g. 2x4x4", "audio": "T (frames), e.g. 50",
            "text": "nothing (text takes --max-new-tokens)"}[produce]
    parts = text.lower().split("x")
    if produce == "text" or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--grid {text!r}: {'an' if produce[0] in 'aeiou' else 'a'} {produce} grid is {want}")
    return tuple(int(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    if args.method == "diffusion":  # a diffusion model folder, not a token model: its own loader and loop
        return _run_diffusion(args)
    if args.method == "hybrid":  # a Transfusion model folder: denoised image patches / captions of an image
        return _run_hybrid(args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model, vocab, _, vocab_dir = load_model(args.ckpt, args.vocab, args.device)
    image_size = codec_input_size(vocab_dir, {}, "image") if args.source else None
    segments: list[Segment] = [load_media(s, vocab, image_size) for s in args.source]
    if args.prompt:
        segments.append(Text(text=args.prompt))
    produce = args.produce
    if args.num_samples < 1 or args.best_of < 1:
        raise ValueError(f"--num-samples {args.num_samples} / --best-of {args.best_of}: each must be >= 1")
    grid = parse_grid(args.grid, produce) if args.grid else None
    until_end = args.until_end
    if grid is None and produce != "text":  # what the model was trained with (generation_config.json), if known
        rec = recorded_defaults(model, produce)
        if produce == "audio" and rec.get("until_end"):
            until_end = True
        grid = rec.get("grid") or default_grid(vocab, produce,
                                                args.max_new_tokens or min(400, model.config.max_seq_len // 2))
    if grid is not None:
        grid = check_grid(vocab, produce, grid, model.config.max_seq_len)
    out = Path(args.out) if args.out else (None if produce == "text" else Path("out" + OUT_SUFFIX[produce]))
    stream = not args.no_stream and args.num_samples == 1 and args.best_of == 1 and args.method in ("cached", "naive")
    preview = Path(args.preview) if args.preview else out
    streamer = _Streamer(vocab, produce, grid, preview if produce == "image" else None) if stream else None
    try:
        result = generate(model, vocab, segments, produce, grid=grid, cfg_scale=args.cfg_scale,
                          cfg_schedule=args.cfg_schedule, temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, seed=args.seed, max_new_tokens=args.max_new_tokens,
                          num_samples=args.num_samples, on_token=streamer, method=args.method,
                          until_end=until_end, best_of=args.best_of, rerank=args.rerank,
                          steps=args.steps if args.method == "masked" else None)
    finally:
        if streamer is not None:
            streamer.close()  # an error message then starts on a line of its own
    if streamer is not None and produce == "text":
        sys.stdout.write("\n")
    elif streamer is not None:
        print(file=sys.stderr)
    for r, seg in enumerate(result.outputs):
        if produce == "text" and out is None:
            if streamer is None:
                print(seg.text)
            continue
        path = out if len(result) == 1 else out.with_name(f"{out.stem}_{r}{out.suffix}")
        save_output(seg, path, vocab)
        print(f"wrote {path}", file=sys.stderr)
    s: dict[str, Any] = result.stats
    extra = f", {s['accepted_per_step']:.2f} tokens/forward" if "accepted_per_step" in s else ""
    if "best_of" in s:
        best = ", ".join(f"{row[c]:.2f}" for row, cs in zip(s["candidate_scores"], s["chosen"]) for c in cs)
        extra += (f"; kept the best of {s['best_of']} by the {s['rerank']} score ({best}; "
                  f"{s['rerank_seconds']:.2f} s to score {s['candidates']} candidates)")
    print(f"{s['tokens']} tokens in {s['seconds']:.2f} s ({s['tokens_per_s']:.1f} tokens/s, "
          f"{s['forwards']} forwards{extra})", file=sys.stderr)
    return 0


def _run_hybrid(args: argparse.Namespace) -> int:
    """``omnitok generate PROMPT --to image --method hybrid --steps N --ckpt DIR`` and
    ``omnitok generate --from digit.png --to text --method hybrid --ckpt DIR``."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = str(select_device(args.device))
    pipe = HybridPipeline.load(args.ckpt, device=device)
    if args.produce == "image":
        if not args.prompt or args.source:
            raise ValueError("--method hybrid --to image takes a text prompt (and no --from file)")
        steps = int(args.steps or 20)
        cfg = 3.0 if args.cfg_scale is None else float(args.cfg_scale)
        images, stats = pipe.text_to_image([args.prompt] * args.num_samples, steps=steps, sampler=args.sampler,
                                           cfg_scale=cfg, eta=float(args.eta),
                                           seed=0 if args.seed is None else int(args.seed), progress=not args.no_stream)
        _write_images(images, args.out)
        print(f"{len(images)} image(s) by the hybrid, {args.sampler} {steps} steps (cfg {cfg:g}): "
              f"{stats['seconds']:.2f} s, {stats['seconds_per_image']:.3f} s per image", file=sys.stderr)
        return 0
    if args.produce == "text":
        if len(args.source) != 1 or args.prompt:
            raise ValueError("--method hybrid --to text takes one image: --from FILE.png (and no text prompt)")
        size = pipe.image_side()
        img = load_image(args.source[0])  # (3, H, W) in [-1, 1]
        img = resize_tensor(img, size) if tuple(img.shape[-2:]) != (size, size) else img
        caps, stats = pipe.image_to_text(img[None].expand(args.num_samples, -1, -1, -1))
        text = "\n".join(caps)
        if args.out:
            Path(args.out).write_text(text + "\n")
        print(text)
        print(f"captioned in {stats['seconds']:.2f} s ({stats['forwards']} forwards)", file=sys.stderr)
        return 0
    raise ValueError(f"--method hybrid generates images (--to image) or text from an image (--to text), got --to "
                     f"{args.produce}")


def _run_diffusion(args: argparse.Namespace) -> int:
    """``omnitok generate PROMPT --to image --method diffusion --steps N --sampler ddim --cfg S --ckpt DIR``."""
    if args.produce != "image":
        raise ValueError(f"--method diffusion generates images only (--to image), got --to {args.produce}")
    if not args.prompt:
        raise ValueError("--method diffusion needs a text prompt")
    if args.source:
        raise ValueError("--method diffusion takes a text prompt only, not --from files")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.ckpt, device=str(select_device(args.device)))
    steps = int(args.steps or 20)
    cfg = 3.0 if args.cfg_scale is None else float(args.cfg_scale)
    images, stats = pipe([args.prompt] * args.num_samples, sampler=args.sampler, steps=steps, cfg_scale=cfg,
                         eta=float(args.eta), seed=0 if args.seed is None else int(args.seed),
                         progress=not args.no_stream)
    _write_images(images, args.out)
    print(f"{len(images)} image(s) by {args.sampler} in {steps} steps (cfg {cfg:g}): {stats['seconds']:.2f} s, "
          f"{stats['seconds_per_image']:.3f} s per image", file=sys.stderr)
    return 0


def _write_images(images: torch.Tensor, out: str | None) -> None:
    """images (N, C, H, W) in [-1, 1] -> ``out`` (default out.png), numbered ``_0``, ``_1``, ... when N > 1."""
    path = Path(out) if out else Path("out.png")
    for r, img in enumerate(images):
        p = path if len(images) == 1 else path.with_name(f"{path.stem}_{r}{path.suffix}")
        save_image(img, p)
        print(f"wrote {p}", file=sys.stderr)
