"""``omnitok quickstart`` (``make quickstart``): real data -> codecs -> one any-to-any model -> judges -> report.

    omnitok quickstart                         # configs/quickstart.yaml, writes quickstart/report.html
    omnitok quickstart --preset debug          # the whole pipeline at test size (seconds)
    omnitok quickstart lm.max_steps=3000 eval.limit=100     # key=value overrides of the preset

Stages (each prints a header, shows tqdm progress, and is skipped when its output exists and was made from the
same settings, so a rerun continues where the last one stopped; a stage whose settings (or whose upstream stage)
changed since it ran is cleared and run again; ``--redo STAGE`` runs a stage and everything after it again):

1. ``data``      digits (images + captions), a slice of emoji, flite-spoken digit strings and single digits,
                 moving-digit videos and a slice of the text corpus, built with ``omnitok data build`` under
                 ``<cache root>/quickstart-data`` (a separate root, so full builds elsewhere are never replaced)
2. ``judge``     the digit-classifier judge (trained on digits/train; its test accuracy is reported)
3. ``codecs``    BPE text codec, image, speech and video codecs from the ``quickstart-*`` codec presets
4. ``tokenize``  one vocabulary over the four codecs (with ``<|mask|>`` when ``masked`` > 0); token shards for
                 every task (train and val)
5. ``lm``        one transformer on the mixture of all tasks (``configs/lm/quickstart.yaml``); ``masked: r``
                 masks a share r of the caption -> image documents (masked parallel decoding, off at 0)
6. ``eval``      ``omnitok eval model`` with outside judges -> ``eval.json`` + sample media
7. ``report``    ``report.html`` with images, audio players, video, loss curves and the evaluation table

The GPU is used when present (codec trainers, tokenisation and the LM pick ``cuda`` automatically).
Stage times (wall and CPU seconds) are kept in ``<out>/timings.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnitok._overrides import apply_overrides, load_yaml

__all__ = ["STAGES", "add_arguments", "load_config", "run", "run_pipeline"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
STAGES = ("data", "judge", "codecs", "tokenize", "lm", "eval", "report")
MODALITIES = ("image", "audio", "video")


# ----- config ---------------------------------------------------------------------------------------------
def load_config(preset: str = "quickstart", overrides: list[str] | None = None) -> dict[str, Any]:
    """configs/quickstart.yaml (``debug`` -> configs/quickstart-debug.yaml, or a path) + ``key=value`` overrides."""
    name = {"default": "quickstart", "quickstart": "quickstart", "debug": "quickstart-debug"}.get(preset, preset)
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"--preset {preset!r}: no such quickstart preset ({path}); use quickstart or debug")
    cfg = load_yaml(path.read_text()) or {}
    for ov in overrides or []:
        key, sep, value = ov.partition("=")
        if not sep or not key:
            raise ValueError(f"override {ov!r}: expected key=value, e.g. lm.max_steps=3000")
        if key.startswith("lm.") and key.split(".", 1)[1] not in LM_STAGE_KEYS:
            cfg.setdefault("lm", {}).setdefault("overrides", []).append(f"{key.split('.', 1)[1]}={value}")
            continue
        apply_overrides(cfg, [ov])
    for section in ("data", "codecs", "tokenize", "lm", "eval"):
        if section not in cfg:
            raise ValueError(f"{path}: missing section {section!r}")
    dtype = (cfg.get("vocab") or {}).get("audio_encode_dtype")  # None: the codec's own default (float64)
    if dtype not in (None, "float32", "float64"):
        raise ValueError(f"vocab.audio_encode_dtype: expected float32 or float64, got {dtype!r}")
    share = (cfg.get("vocab") or {}).get("share_image_ids", False)
    if not isinstance(share, bool):
        raise ValueError(f"vocab.share_image_ids: expected true or false, got {share!r}")
    ratio = cfg.get("masked", 0.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"masked: expected a share of caption -> image documents in [0, 1] (0 = off), got {ratio!r}")
    return cfg


def masked_ratio(cfg: dict[str, Any]) -> float:
    """The share of caption -> image documents the LM sees masked (``masked:``; 0 = off, no ``<|mask|>``)."""
    return float(cfg.get("masked") or 0.0)


# keys of the quickstart's `lm:` section itself; any other lm.KEY=VALUE override is a training setting
LM_STAGE_KEYS = ("preset", "overrides", "reserve_minutes", "min_minutes")


# ----- stage bookkeeping ----------------------------------------------------------------------------------
def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# the config sections each stage reads (its own and its upstream stages')
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "judge": (),
    "codecs": ("data", "codecs", "codec_overrides"),
    "tokenize": ("data", "codecs", "codec_overrides", "tokenize", "vocab", "val_limit"),
    "lm": ("data", "codecs", "codec_overrides", "tokenize", "vocab", "val_limit", "lm", "budget_minutes"),
    "eval": ("data", "codecs", "codec_overrides", "tokenize", "vocab", "val_limit", "lm", "budget_minutes", "eval"),
    "report": (),
}


def _preset_text(kind: str, name: Any) -> str:
    """The text of a named codec / LM preset file, so editing a preset makes its stage stale too."""
    path = CONFIG_DIR / kind / f"{name}.yaml"
    return path.read_text() if isinstance(name, str) and path.is_file() else ""


def fingerprint(cfg: dict[str, Any], stage: str) -> str:
    """sha256 over the settings ``stage`` depends on (config sections and the preset files they name)."""
    keys = STAGE_KEYS[stage]
    part: dict[str, Any] = {k: cfg.get(k) for k in keys}
    if stage == "tokenize":
        part["tokenize"] = _token_specs(cfg.get("tokenize"))  # mixture ratios are the LM's business
    if "codecs" in keys:
        part["codec_presets"] = {m: _preset_text("codec", v) for m, v in sorted((cfg.get("codecs") or {}).items())}
    if "lm" in keys:
        part["lm_preset"] = _preset_text("lm", (cfg.get("lm") or {}).get("preset"))
    if masked_ratio(cfg) > 0 and "tokenize" in keys:  # absent when off: fingerprints of earlier runs still hold
        part["masked"] = masked_ratio(cfg) if "lm" in keys else True  # the tokeniser only adds <|mask|>
    return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Runs stages with a header, skips finished ones, records wall and CPU seconds in ``timings.json``.

    A stage is skipped only when its output exists, its settings fingerprint equals the one recorded when it
    ran, and no upstream stage ran after it; otherwise its ``clear`` removes the stale output and it runs."""

    def __init__(self, out: Path, redo: set[str], cfg: dict[str, Any] | None = None) -> None:
        self.out = out
        self.cfg = cfg or {}
        self.path = out / "timings.json"
        self.timings: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.k = 0
        self.ran: list[str] = []  # stages run (not skipped) in this call
        # --redo STAGE redoes the stages after it as well (they read its output)
        first = min((STAGES.index(r) for r in redo if r in STAGES), default=len(STAGES))
        self.redo = set(redo) | {s for s in STAGES[first:] if s != "judge"}

    def _stale(self, name: str) -> str | None:
        if name in ("judge", "report"):  # the judge is versioned by its own VERSION; the report always runs
            return None
        rec = self.timings.get(name) or {}
        if rec.get("fingerprint") != fingerprint(self.cfg, name):
            return "its settings changed" if rec.get("fingerprint") else "it has no settings record"
        upstream = [s for s in self.ran if s != "judge"]
        if upstream:
            return f"stage {upstream[-1]} ran again"
        return None

    def run(self, name: str, title: str, fn: Callable[[], Any], done: Callable[[], bool],
            clear: Callable[[], None] | None = None) -> Any:
        self.k += 1
        print(f"\n=== [{self.k}/{len(STAGES)}] {name}: {title} ===", flush=True)
        if name not in self.redo and done():
            why = self._stale(name)
            if why is None:
                print(f"    (done before: {self.timings.get(name, {}).get('wall_s', '?')} s wall; skipped)",
                      flush=True)
                return None
            print(f"    (output exists but {why}: running it again)", flush=True)
            if clear is not None:
                clear()
        elif name in self.redo and clear is not None and done():
            clear()
        elif clear is not None and self.timings.get(name, {}).get("started") not in (None, fingerprint(self.cfg, name)):
            print("    (an unfinished run of this stage used other settings: starting it afresh)", flush=True)
            clear()  # a killed run resumes from its checkpoints only when its settings are unchanged
        self.ran.append(name)
        self.timings[name] = {**self.timings.get(name, {}), "started": fingerprint(self.cfg, name)}
        self.path.write_text(json.dumps(self.timings, indent=2))
        t0, c0 = time.perf_counter(), _cpu_seconds()
        result = fn()
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        self.timings[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                              "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "fingerprint": fingerprint(self.cfg, name), "started": fingerprint(self.cfg, name)}
        self.path.write_text(json.dumps(self.timings, indent=2))
        print(f"    {name} took {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
        return result


# ----- the stages -----------------------------------------------------------------------------------------
def _stage_data(cfg: dict[str, Any], data_root: Path, progress: bool) -> None:
    from omnitok.data.build import build_dataset

    for name, spec in cfg["data"].items():
        spec = dict(spec or {})
        opts = {str(k): str(v) for k, v in (spec.get("options") or {}).items()}
        print(f"--- build {name} {spec.get('limit') or ''} {opts or ''}", flush=True)
        card = build_dataset(name, root=data_root, size=spec.get("size"), limit=spec.get("limit"), options=opts,
                             splits=spec.get("splits"), progress=progress)
        print(f"    {name}: {card.get('counts')}", flush=True)


def _data_done(cfg: dict[str, Any], data_root: Path) -> bool:
    from omnitok.data.build import load_card

    return all(load_card(name, data_root) for name in cfg["data"])


def _codec_dirs(out: Path) -> dict[str, Path]:
    d = out / "codecs"
    return {"text": d / "text", "image": d / "image" / "codec", "audio": d / "audio" / "codec",
            "video": d / "video" / "codec"}


def _stage_codecs(cfg: dict[str, Any], out: Path, data_root: Path, progress: bool) -> None:
    from omnitok.codecs.builder import load_preset
    from omnitok.train.codec import trainer_for
    from omnitok.train.text_codec import train_text_codec

    dirs = _codec_dirs(out)
    spec = cfg["codecs"]
    if not (dirs["text"] / "config.json").is_file():
        t = dict(spec.get("text") or {})
        print(f"--- text codec: BPE {t.get('vocab_size', 1024)}", flush=True)
        info = train_text_codec(int(t.get("vocab_size", 1024)), dirs["text"],
                                datasets=tuple(t.get("datasets") or ("text", "digits", "emoji", "speech", "video")),
                                root=data_root, progress=progress)
        print(f"    {info['learned_ids']} ids in {info['seconds']} s", flush=True)
    for m in MODALITIES:
        if (dirs[m] / "config.json").is_file():
            continue
        preset = load_preset(str(spec[m]), list((cfg.get("codec_overrides") or {}).get(m, [])))
        if preset.get("image_from"):  # built around a codec trained above (e.g. the sprite video codec)
            from omnitok.codecs import load_codec
            from omnitok.codecs.builder import derive_codec

            source = dirs[str(preset["image_from"])]
            codec = derive_codec(preset, load_codec(source))
            codec.save_pretrained(dirs[m], extra={"preset": preset, "derived_from": str(source)})
            print(f"--- {m} codec: preset {preset.get('name')} around {source} (nothing to train)", flush=True)
            continue
        if not progress:
            preset.setdefault("train", {})["progress"] = False
        print(f"--- {m} codec: preset {preset.get('name')} ({preset['train'].get('steps')} steps)", flush=True)
        run_dir = dirs[m].parent
        resume = (run_dir / "checkpoints").is_dir()
        trainer_for(preset["type"]).train(preset, run_dir, resume=resume)


def _codecs_done(out: Path) -> bool:
    return all((p / "config.json").is_file() for p in _codec_dirs(out).values())


def _token_dir(out: Path, data: str, split: str) -> Path:
    return out / "tokens" / data.replace(":", "-") / split


def _stage_tokenize(cfg: dict[str, Any], out: Path, data_root: Path, progress: bool) -> None:
    """One vocabulary over the four codecs, then token shards per task and split (the ``omnitok tokenize``
    pipeline, in this process so the codecs load once)."""
    from itertools import islice

    import torch

    from omnitok.codecs.base import select_device
    from omnitok.data.build import load_card, shard_paths
    from omnitok.data.dataset import ShardDataset
    from omnitok.data.paths import dataset_dir
    from omnitok.data.tokenize import (
        CROSS_TASKS,
        CodeCache,
        codec_input_size,
        load_or_build_vocab,
        spoken_digits,
        tokenize_dataset,
    )

    vocab_dir = out / "vocab"
    codecs = {m: str(p) for m, p in _codec_dirs(out).items()}
    max_size = int(cfg.get("vocab", {}).get("max_size", 16))
    vocab = load_or_build_vocab(vocab_dir, codecs, max_height=max_size, max_width=max_size, max_frames=max_size,
                                with_mask=masked_ratio(cfg) > 0,
                                share_image_ids=bool(cfg.get("vocab", {}).get("share_image_ids", False)))
    device = select_device("auto")
    for codec in vocab.codecs.values():
        codec.to(device).eval()
    dtype = cfg.get("vocab", {}).get("audio_encode_dtype")  # checked by load_config
    if dtype and "audio" in vocab.codecs:  # float32: the same codes in practice (AudioCodec.encode_dtype)
        vocab.codecs["audio"].encode_dtype = getattr(torch, dtype)  # type: ignore[assignment]
    cache = CodeCache().install(vocab)  # paired tasks share their images and clips: encode each once
    image_size = codec_input_size(vocab_dir, codecs, "image")
    video_size = codec_input_size(vocab_dir, codecs, "video")
    sample_rate = getattr(vocab.codecs.get("audio"), "sample_rate", None)
    for entry in cfg["tokenize"]:
        name, _, task = entry["data"].partition(":")
        for split in ("train", "val"):
            if not shard_paths(dataset_dir(name, data_root), split):
                print(f"    {name} has no {split} split; skipping {entry['data']} ({split})", flush=True)
                continue
            limit = entry.get("limit") if split == "train" else cfg.get("val_limit", 64)
            ds = ShardDataset(name, split, root=data_root, decode=False, rank=0, world_size=1)
            card = load_card(name, data_root) or {}
            total = int((card.get("counts") or {}).get(split, 0)) or None
            if limit is not None:
                total = min(total or int(limit), int(limit))
            try:
                partners = spoken_digits(split, data_root) if task in CROSS_TASKS else None
            except ValueError as e:
                print(f"    skipping {entry['data']} ({split}): {e}", flush=True)
                continue
            stats = tokenize_dataset(
                vocab, islice(ds, limit) if limit is not None else ds, _token_dir(out, entry["data"], split), task,
                partners=partners, image_size=image_size, sample_rate=sample_rate, video_size=video_size,
                meta={"dataset": name, "split": split, "vocab_dir": str(vocab_dir.resolve())}, total=total,
                progress=progress, views=int(entry.get("views", 1)) if split == "train" else 1,
                shift=int(entry.get("shift", 0)) if split == "train" else 0)
            print(f"    {entry['data']} ({split}): {stats['documents']} documents, {stats['tokens']} ids"
                  f"{' [done before]' if stats.get('resumed') else ''}", flush=True)
    print(f"    codes reused for {cache.hits} of {cache.hits + cache.misses} media inputs", flush=True)
    (out / "tokens" / "DONE").write_text(json.dumps(cfg["tokenize"]))


def _token_specs(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The tokenize entries without their mixture ratios (what the token shards depend on)."""
    return [{k: v for k, v in e.items() if k != "ratio"} for e in entries or []]


def _tokens_done(cfg: dict[str, Any], out: Path) -> bool:
    done = out / "tokens" / "DONE"
    return done.is_file() and _token_specs(json.loads(done.read_text())) == _token_specs(cfg["tokenize"])


def lm_minutes(cfg: dict[str, Any], timings: dict[str, Any]) -> float | None:
    """The LM stage's time budget: ``budget_minutes`` less the wall time the stages before it took (as recorded,
    so a rerun computes the same figure) and ``lm.reserve_minutes`` for evaluation, at least
    ``lm.min_minutes``; None when ``budget_minutes`` is 0 / absent or ``lm.overrides`` sets max_minutes."""
    budget = float(cfg.get("budget_minutes") or 0)
    lm = cfg.get("lm") or {}
    if budget <= 0 or any(str(o).startswith("max_minutes=") for o in lm.get("overrides") or []):
        return None
    spent = sum(float((timings.get(k) or {}).get("wall_s", 0.0)) for k in ("data", "judge", "codecs", "tokenize"))
    left = budget - spent / 60.0 - float(lm.get("reserve_minutes", 4))
    return round(max(float(lm.get("min_minutes", 5)), left), 1)


def _stage_lm(cfg: dict[str, Any], out: Path, device: str, progress: bool, minutes: float | None = None) -> None:
    from omnitok.train.lm import train_preset

    data = ",".join(f"{_token_dir(out, e['data'], 'train')}@{float(e.get('ratio', 1.0))}" for e in cfg["tokenize"]
                    if _token_dir(out, e["data"], "train").is_dir())
    lm = cfg["lm"]
    overrides = [str(o) for o in lm.get("overrides") or []]
    if minutes is not None:
        print(f"    time budget: {minutes:g} min for the LM (budget_minutes {cfg['budget_minutes']} less the "
              "stages before it and lm.reserve_minutes for evaluation)", flush=True)
        overrides.append(f"max_minutes={minutes}")
    if masked_ratio(cfg) > 0:  # masked caption -> image documents (MaskGIT) beside the next-token ones
        sources = [e["data"].replace(":", "-") for e in cfg["tokenize"] if e["data"].endswith(":caption2image")
                   and _token_dir(out, e["data"], "train").is_dir()]
        overrides.append("train.masked={" + ", ".join(f"{n}: {masked_ratio(cfg)}" for n in sources) + "}")
    train_preset(str(lm.get("preset", "quickstart")), data, out / "lm", overrides,
                 resume=(out / "lm" / "checkpoints").is_dir(), progress=progress, device=device)


def _stage_eval(cfg: dict[str, Any], out: Path, data_root: Path, judge_dir: Path, device: str,
                progress: bool) -> dict[str, Any]:
    from omnitok.eval.harness import evaluate_model, load_model_and_vocab, settings_for

    e = dict(cfg["eval"])
    model, vocab, vocab_dir = load_model_and_vocab(str(out / "lm" / "final"), str(out / "vocab"), device)
    s = settings_for(vocab_dir, tasks=list(e.get("tasks")), limit=int(e.get("limit", 50)),
                     seed=int(e.get("seed", 0)), data_root=str(data_root), engines=tuple(e.get("engines") or ()),
                     fid=bool(e.get("fid", True)), similarity=bool(e.get("similarity", True)), samples_dir=str(out / "media"), progress=progress,
                     batch_size=int(e.get("batch_size", 16)), cfg_scale=e.get("cfg_scale"),
                     temperature=e.get("temperature"), top_k=e.get("top_k"),
                     sampling=dict(e.get("sampling") or {}), judge_dir=str(judge_dir))
    result = evaluate_model(model, vocab, s)
    result["ckpt"] = str(out / "lm" / "final")
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    record_sampling(out / "lm" / "final", e)
    return result


def record_sampling(model_dir: Path, e: dict[str, Any]) -> dict[str, Any]:
    """Write the sampling settings the evaluation judged the model with into its ``generation_config.json``
    (per output modality; audio's ``until_end`` from the text -> speech task), so ``omnitok generate`` and
    ``generate()`` default to them. Returns the file's new content."""
    from omnitok._io import read_json, write_json_atomic

    path = model_dir / "generation_config.json"
    gc = read_json(path) if path.is_file() else {}
    sampling: dict[str, Any] = dict(gc.get("sampling") or {})
    top = {k: e[k] for k in ("cfg_scale", "temperature", "top_k") if e.get(k) is not None}
    given = dict(e.get("sampling") or {})
    for modality in ("image", "audio", "video"):
        keep = {**sampling.get(modality, {}), **top, **dict(given.get(modality) or {})}
        if modality == "audio" and (given.get("t2s") or {}).get("until_end"):
            keep["until_end"] = True
        if keep:
            sampling[modality] = keep
    gc["sampling"] = sampling
    gc["sampling_from"] = "the quickstart's evaluation settings (configs/quickstart.yaml eval.sampling)"
    write_json_atomic(path, gc)
    return gc


def run_pipeline(preset: str = "quickstart", out: str | os.PathLike = "quickstart", *,
                   data_root: str | os.PathLike | None = None, overrides: list[str] | None = None,
                   device: str = "auto", redo: set[str] | None = None, progress: bool = True) -> Path:
    """Run (or continue) the quickstart; returns the path of report.html.

    The stages read datasets from the quickstart's own cache root, so ``OMNITOK_HOME`` points there while they
    run; it (and ``OMNITOK_NPM_DIR``) is put back afterwards, so a second call in the same process finds the
    same root."""
    saved = {k: os.environ.get(k) for k in ("OMNITOK_HOME", "OMNITOK_NPM_DIR")}
    try:
        return _run_pipeline(preset, out, data_root=data_root, overrides=overrides, device=device, redo=redo,
                             progress=progress)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_pipeline(preset: str, out: str | os.PathLike, *, data_root: str | os.PathLike | None,
                  overrides: list[str] | None, device: str, redo: set[str] | None, progress: bool) -> Path:
    from omnitok.data.paths import cache_root, npm_prefix

    cfg = load_config(preset, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(data_root) if data_root is not None else cache_root() / "quickstart-data"
    root.mkdir(parents=True, exist_ok=True)
    # the codec trainers read datasets from the cache root: point it at the quickstart's data, but keep sharing
    # the npm packages already installed in the user's cache
    os.environ.setdefault("OMNITOK_NPM_DIR", str(npm_prefix()))
    from omnitok.eval.judges.digit_classifier import VERSION as JUDGE_VERSION

    judge_dir = cache_root() / "judges" / JUDGE_VERSION  # shared with `omnitok eval model`
    os.environ["OMNITOK_HOME"] = str(root)
    (out / "config.json").write_text(json.dumps({"preset": preset, "data_root": str(root), **cfg}, indent=2))
    redo = set(redo or ())
    bad = redo - set(STAGES)
    if bad:
        raise ValueError(f"--redo: unknown stage(s) {sorted(bad)}; stages: {', '.join(STAGES)}")
    st = Stages(out, redo, cfg)

    def rm(*paths: Path) -> Callable[[], None]:
        def clear() -> None:
            for p in paths:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        return clear

    t0 = time.perf_counter()
    st.run("data", "build digits, emoji, speech, video and text", lambda: _stage_data(cfg, root, progress),
           lambda: _data_done(cfg, root))

    def judge() -> None:
        from omnitok.eval.judges.digit_classifier import load_or_train

        clf = load_or_train(judge_dir, data_root=root, progress=progress)
        print(f"    digit judge test accuracy: {clf.test_accuracy:.4f}", flush=True)

    def judge_done() -> bool:
        return (judge_dir / "model.safetensors").is_file()

    st.run("judge", "train the digit-classifier judge", judge, judge_done)
    st.run("codecs", "train the text, image, speech and video codecs",
           lambda: _stage_codecs(cfg, out, root, progress), lambda: _codecs_done(out), rm(out / "codecs"))
    st.run("tokenize", "build the vocabulary and token shards for every task",
           lambda: _stage_tokenize(cfg, out, root, progress), lambda: _tokens_done(cfg, out),
           rm(out / "tokens", out / "vocab"))
    st.run("lm", "train the one any-to-any model",
           lambda: _stage_lm(cfg, out, device, progress, lm_minutes(cfg, st.timings)),
           lambda: (out / "lm" / "final" / "model.safetensors").is_file(), rm(out / "lm"))
    st.run("eval", "judge the model with outside judges", lambda: _stage_eval(cfg, out, root, judge_dir, device, progress),
           lambda: (out / "eval.json").is_file(), rm(out / "eval.json", out / "media"))

    def report() -> None:
        from omnitok.report.html import write_report

        write_report(out, st.timings)

    st.run("report", "write report.html", report, lambda: False)
    total = sum(v.get("wall_s", 0) for k, v in st.timings.items() if k in STAGES)
    print(f"\nquickstart: this run {time.perf_counter() - t0:.0f} s; all stages {total:.0f} s wall. "
          f"Open {out / 'report.html'}", flush=True)
    return out / "report.html"


# ----- CLI ------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="quickstart", help="quickstart (default), debug, or a YAML path")
    parser.add_argument("--out", default="quickstart", help="output folder (report.html, models, samples)")
    parser.add_argument("--root", default=None, help="data root (default <cache root>/quickstart-data)")
    parser.add_argument("--device", default="auto", help="auto (cuda when present) | cpu | cuda")
    parser.add_argument("--limit", type=int, default=None, help="held-out examples per evaluation task")
    parser.add_argument("--redo", default="", help=f"comma-separated stages to run again ({', '.join(STAGES)})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (stage headers only)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lm.max_steps=3000 eval.limit=100")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"eval.limit={int(args.limit)}")
    report = run_pipeline(args.preset, args.out, data_root=args.root, overrides=overrides, device=args.device,
                          redo={s for s in args.redo.split(",") if s}, progress=not args.no_progress)
    print(f"report: {report}")
    return 0
