"""``omnitok info DIR``: what a model, codec, vocabulary, run or token folder holds and what it was trained with.

    omnitok info quickstart/lm/final      # model: size, vocabulary, the grids and sampling generation defaults to
    omnitok info quickstart/lm            # run folder: its final model or latest checkpoint (step)
    omnitok info quickstart/codecs/image/codec
    omnitok info quickstart/vocab
    omnitok info quickstart/tokens        # tokens root: every task's documents, ids and mixture ratio

Weights are checked against their recorded sha256 on the way (a damaged folder is reported, not loaded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "describe", "run"]


def _model(path: Path) -> list[str]:
    if json.loads((path / "config.json").read_text()).get("model_class") == "DiffusionModel":
        return _diffusion(path)
    from omnitok.generation.loading import find_vocab
    from omnitok.model.transformer import Transformer

    model = Transformer.from_pretrained(path)  # verifies the checksum, shapes and dtypes
    c = model.config
    lines = [f"model       {path}",
             f"  size      {c.n_layer} layers x {c.dim} wide, {c.n_head} heads, {model.num_params() / 1e6:.2f} M "
             f"parameters, {c.vocab_size} ids, context {c.max_seq_len}",
             f"  weights   sha256 {_recorded_sha(path)[:16]} (verified)"]
    try:
        lines.append(f"  vocab     {find_vocab(path, None)}")
    except ValueError:
        lines.append("  vocab     not recorded (pass --vocab to omnitok generate)")
    gc = getattr(model, "generation_config", None) or {}
    grids = gc.get("grids") or {}
    if not gc:
        lines.append("  generate  no generation_config.json: omnitok generate uses its built-in defaults")
    for modality in ("image", "video", "audio"):
        parts = []
        if modality in grids:
            g = "x".join(str(x) for x in grids[modality])
            parts.append(f"grid {g}" + (" (the longest training clip, frames)" if modality == "audio" else ""))
        parts += [f"{k} {v}" for k, v in sorted(((gc.get("sampling") or {}).get(modality) or {}).items())]
        if parts:
            lines.append(f"  {modality:<9} " + ", ".join(parts))
    if gc.get("sampling_from"):
        lines.append(f"  sampling  from {gc['sampling_from']}")
    return lines


def _diffusion(path: Path) -> list[str]:
    from omnitok.diffusion.model import DiffusionModel

    model = DiffusionModel.from_pretrained(path)  # verifies the checksum and shapes
    c, s = model.config, model.scheduler_config
    params = sum(p.numel() for p in model.parameters())
    space = f"latents of {c['latent']['codec']} (scale {c['latent']['scale']:.4g})" if c.get("latent") else "pixels"
    text = ("a frozen CLIP text embedding (text_clip/)" if c["text"].get("kind") == "embedding"
            else f"BPE ids ({c['text']['vocab_size']}) through a {c['text'].get('dim', 64)}-wide encoder")
    return [f"diffusion   {path}",
            f"  size      {c['denoiser'].get('name', 'unet')} denoiser, {params / 1e6:.2f} M parameters, samples "
            f"{'x'.join(str(x) for x in model.sample_shape)} ({space})",
            f"  schedule  {s.schedule}, {s.num_train_timesteps} timesteps, predicts {s.prediction_type}"
            + (", zero terminal SNR" if s.zero_terminal_snr else ""),
            f"  text      {text}",
            f"  weights   sha256 {_recorded_sha(path)[:16]} (verified)",
            "  generate  omnitok generate PROMPT --to image --method diffusion --sampler ddim|ddpm|euler --ckpt DIR"]


def _recorded_sha(path: Path) -> str:
    cfg = json.loads((path / "config.json").read_text())
    return str(cfg.get("weights_sha256") or "not recorded")


def _codec(path: Path) -> list[str]:
    from omnitok.codecs.base import load_codec

    codec = load_codec(path)
    cfg = json.loads((path / "config.json").read_text())
    return [f"codec       {path}",
            f"  class     {type(codec).__name__} ({cfg.get('modality')}), {codec.num_codebooks} codebook(s) of "
            f"{codec.codebook_size} codes",
            f"  weights   sha256 {str(cfg.get('weights_sha256'))[:16]} (verified)",
            f"  config    {json.dumps(cfg.get('config'), sort_keys=True)[:300]}"]


def _vocab(path: Path) -> list[str]:
    from omnitok.vocab.vocabulary import Vocabulary

    v = Vocabulary.load(path, load_codecs=False)
    lines = [f"vocabulary  {path}", f"  ids       {v.size} (hash {v.hash[:12]}), audio pattern {v.audio_pattern}"]
    for m, e in v.entries.items():
        lines.append(f"  {m:<9} ids {e.offset}..{e.offset + e.size - 1}: {e.num_codebooks} x {e.codebook_size} "
                     f"codes ({e.codec_class})")
    return lines


def _tokens(path: Path) -> list[str]:
    from omnitok.data.token_shards import TokenShards
    from omnitok.train.lm import expand_data

    lines = [f"tokens      {path}"]
    for item in expand_data(str(path)).split(","):
        d, _, ratio = item.partition("@")
        ts = TokenShards(d)
        lines.append(f"  {Path(d).parent.name:<28} {len(ts):>7} documents {ts.num_tokens:>10} ids"
                     + (f"  ratio {ratio}" if ratio else ""))
    return lines


def describe(directory: str | Path) -> list[str]:
    """Lines describing ``directory`` (a model, training checkpoint, run, codec, vocabulary or tokens folder)."""
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"{path}: no such folder")
    cfg: Any = None
    if (path / "config.json").is_file():
        from omnitok._io import read_json

        cfg = read_json(path / "config.json")
    if isinstance(cfg, dict) and "codec_class" in cfg:
        return _codec(path)
    if isinstance(cfg, dict) and (path / "model.safetensors").is_file():
        lines = _model(path)
        if isinstance(cfg.get("step"), int):
            lines.insert(1, f"  step      {cfg['step']} (a training checkpoint)")
        return lines
    if (path / "vocab.json").is_file():
        return _vocab(path)
    if (path / "final" / "model.safetensors").is_file():
        return [f"run         {path}", *_model(path / "final")]
    from omnitok.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(path)
    if latest is not None:
        return [f"run         {path} (not finished; latest checkpoint below)", *describe(latest)]
    try:
        return _tokens(path)
    except ValueError:
        pass
    raise ValueError(f"{path}: not a model, checkpoint, run, codec, vocabulary or tokens folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="a model, run, codec, vocabulary or tokens folder")


def run(args: argparse.Namespace) -> int:
    print("\n".join(describe(args.directory)))
    return 0
