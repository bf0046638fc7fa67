"""Every generation paradigm of omnitok on digits, on the same prompts, judges and machine, in ONE run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/paradigms.py [--per-digit 5] [--batch-size 10] [--threads 1] \
        [--nexttoken runs/paradigms/nexttoken] [--quickstart runs/quickstart-ref] [--masked runs/paradigms/masked] \
        [--diffusion runs/paradigms/digits-latent] [--transfusion runs/transfusion/digits] \
        [--out benchmarks/results/paradigms_cpu.json]

Rows (each a model and a decoder; all draw the text -> image prompts "the digit k", ``--per-digit`` each):

* ``next-token``: a digits-only next-token LM (``--nexttoken``: lm/final, vocab/; the masked-digits preset with no
  masked documents, 8 x 8 LFQ codes), cached decoding, CFG 5, top-k 20;
* ``next-token + jacobi``: the same model and sampling, speculative Jacobi decoding (window 3 on a CPU);
* ``quickstart next-token`` / ``quickstart next-token + jacobi``: the same two decoders on the quickstart's
  multi-task LM (``--quickstart``: lm/final, vocab/; 4 x 4 FSQ digit codes) with its recorded sampling (its
  generation_config.json: CFG 5, top-k 20);
* ``masked-K``: the masked-digits LM (``--masked``: lm/final, vocab/; 8 x 8 LFQ codes), MaskGIT decoding in K forwards
  (``--masked-steps``), CFG 5, top-k 20 (the setting of docs/results.md, masked decoding);
* ``latent diffusion DDIM-K``: the digits-latent U-Net (``--diffusion``) on the digits codec's latents, DDIM eta 0,
  CFG 3 (``--diffusion-steps``);
* ``transfusion-K``: the Transfusion hybrid (``--transfusion``) on the same codec's latents, DDIM eta 0, CFG 3
  (``--transfusion-steps``).

Timing alternates: round b generates prompt batch b with every row in turn, the order rotated each round, so load
changes on a shared machine fall on all rows alike; seconds per image = median over rounds of (batch wall time,
sampling + decoding to pixels) / batch size, after one untimed warm-up call per row, ``torch.set_num_threads
(--threads)``; forwards per image = model forwards per batch (a batch's rows run together, CFG rows included).
Seeds: batch b of every row uses seed ``--seed + b``. Judges: the digit CNN of ``omnitok eval``
(:mod:`omnitok.eval.judges.digit_classifier`, trained on real digits only) reads every image; FID
(:mod:`omnitok.eval.fid`) of each row's images against as many held-out test digits (balanced over labels), plus
the floor of that column (as many val digits against the same test digits). Image -> text, for the models that
caption (the three LMs, greedy, at most 16 ids; the hybrid, greedy from clean latents): ``--per-digit`` held-out test
digits per label, accuracy = the share of captions naming the right digit (:func:`digit_from_text`), seconds per
image of the same batches. Training minutes and steps come from each model's own records (quickstart: timings.json
stage "lm"; masked-digits and the next-token digits LM: the latest checkpoint's train_seconds; diffusion: log.jsonl; Transfusion: its
config.json), parameters from the loaded weights. Writes JSON (``--out``) and a figure (``--figure``: digit accuracy
and FID against seconds per image, one curve per paradigm) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# ----- records ------------------------------------------------------------------------------------------------
def _lm_record(run: Path) -> dict[str, Any]:
    """Steps and training seconds of an LM run folder: the quickstart's timings.json (stage "lm") if any, else the
    latest checkpoint's train_seconds; steps from metrics.jsonl."""
    info: dict[str, Any] = {}
    metrics = run / "lm" / "metrics.jsonl"
    if metrics.is_file():
        steps = [json.loads(line).get("step", 0) for line in metrics.read_text().splitlines() if line.strip()]
        info["steps"] = int(max(steps))
    timings = run / "timings.json"
    if timings.is_file() and "lm" in json.loads(timings.read_text()):
        info["train_seconds"] = float(json.loads(timings.read_text())["lm"]["wall_s"])
        info["train_seconds_from"] = "timings.json (stage lm, wall)"
        return info
    latest = run / "lm" / "checkpoints" / "latest.json"
    if latest.is_file():
        ck = run / "lm" / "checkpoints" / json.loads(latest.read_text())["path"] / "config.json"
        cfg = json.loads(ck.read_text())
        info["train_seconds"] = float(cfg.get("train_seconds", 0.0))
        info["steps"] = int(cfg.get("step", info.get("steps", 0)))
        info["train_seconds_from"] = f"{ck.parent.name}/config.json train_seconds"
    return info


def _diffusion_record(run: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return {"steps": int(rows[-1]["step"]), "train_seconds": float(rows[-1]["seconds"]),
            "train_seconds_from": "log.jsonl (last line)"}


def _hybrid_record(folder: Path) -> dict[str, Any]:
    """A final folder's config.json ``train``, or a training checkpoint's step and elapsed seconds."""
    cfg = json.loads((folder / "config.json").read_text())
    if "train" in cfg:
        t = cfg["train"]
        return {"steps": int(t["steps"]), "train_seconds": float(t["seconds"]),
                "train_seconds_from": "config.json train"}
    loader = json.loads((folder / "loader.json").read_text())
    return {"steps": int(cfg["step"]), "train_seconds": float(loader["elapsed"]),
            "train_seconds_from": f"checkpoint {folder.name} loader.json elapsed"}


# ----- rows ---------------------------------------------------------------------------------------------------
class Row:
    """One paradigm at one setting: ``t2i(prompts, seed) -> (images, forwards)``, optionally
    ``i2t(images) -> (captions, forwards)``."""

    def __init__(self, name: str, paradigm: str, model: str, t2i: Callable[[list[str], int], tuple[torch.Tensor, int]],
                 i2t: Callable[[torch.Tensor], tuple[list[str], int]] | None = None, **info: Any) -> None:
        self.name, self.paradigm, self.model, self.t2i, self.i2t, self.info = name, paradigm, model, t2i, i2t, info
        self.images: list[torch.Tensor] = []
        self.seconds: list[float] = []
        self.forwards: list[int] = []


def lm_rows(run: Path, kind: str, masked_steps: list[int]) -> tuple[list[Row], dict[str, Any]]:
    from omnitok.generation import generate
    from omnitok.model.transformer import Transformer
    from omnitok.vocab import Image, Text, Vocabulary

    model = Transformer.from_pretrained(run / "lm" / "final").eval()
    vocab = Vocabulary.load(run / "vocab")
    gc = getattr(model, "generation_config", None) or {}
    grid = tuple(gc.get("grids", {}).get("image") or (8, 8))
    sampling = {"cfg_scale": 5.0, "top_k": 20, "temperature": 1.0} | {
        k: v for k, v in (gc.get("sampling", {}).get("image") or {}).items() if k in ("cfg_scale", "top_k", "temperature")}

    def t2i(method: str, steps: int | None) -> Callable[[list[str], int], tuple[torch.Tensor, int]]:
        def go(prompts: list[str], seed: int) -> tuple[torch.Tensor, int]:
            out = generate(model, vocab, [[Text(p)] for p in prompts], "image", grid=grid, method=method, steps=steps,
                           seed=seed, **sampling)
            return torch.stack([s.data for s in out.outputs]), int(out.stats["forwards"])
        return go

    def i2t(images: torch.Tensor) -> tuple[list[str], int]:
        out = generate(model, vocab, [[Image(data=x)] for x in images], "text", temperature=0.0, max_new_tokens=16,
                       cfg_scale=1.0)
        return [s.text or "" for s in out.outputs], int(out.stats["forwards"])

    name = {"quickstart": "quickstart LM", "nexttoken": "next-token digits LM"}.get(kind, "masked-digits LM")
    rows: list[Row] = []
    if kind in ("quickstart", "nexttoken"):
        tag = "quickstart " if kind == "quickstart" else ""
        label = " (quickstart LM, multi-task)" if kind == "quickstart" else ""
        rows.append(Row(f"{tag}next-token", f"next-token{label}", name, t2i("cached", None), i2t, sampling=sampling))
        rows.append(Row(f"{tag}next-token + jacobi", f"next-token + jacobi{label}", name, t2i("jacobi", None), i2t,
                        sampling=sampling))
    else:
        for k in masked_steps:
            rows.append(Row(f"masked-{k}", "masked", name, t2i("masked", k), i2t, steps=k, sampling=sampling))
    info = {"folder": str(run), "parameters": model.num_params(), "grid": list(grid), "vocab_size": len(vocab),
            **_lm_record(run)}
    return rows, info


def diffusion_rows(run: Path, steps: list[int], cfg: float) -> tuple[list[Row], dict[str, Any]]:
    from omnitok.generation.diffusion import DiffusionPipeline, find_diffusion_folder

    folder = find_diffusion_folder(run)
    pipe = DiffusionPipeline.load(folder)

    def t2i(k: int) -> Callable[[list[str], int], tuple[torch.Tensor, int]]:
        def go(prompts: list[str], seed: int) -> tuple[torch.Tensor, int]:
            x, st = pipe(prompts, sampler="ddim", steps=k, cfg_scale=cfg, seed=seed, batch_size=len(prompts))
            return x, int(st["forwards"])
        return go

    rows = [Row(f"latent diffusion DDIM-{k}", "latent diffusion", "digits-latent U-Net", t2i(k), None, steps=k, cfg=cfg)
            for k in steps]
    info = {"folder": str(folder), "parameters": sum(p.numel() for p in pipe.model.parameters()),
            **_diffusion_record(run)}
    return rows, info


def hybrid_rows(run: Path, steps: list[int], cfg: float) -> tuple[list[Row], dict[str, Any]]:
    from omnitok.generation.hybrid import HybridPipeline, find_hybrid_folder

    folder = find_hybrid_folder(run)
    pipe = HybridPipeline.load(folder)

    def t2i(k: int) -> Callable[[list[str], int], tuple[torch.Tensor, int]]:
        def go(prompts: list[str], seed: int) -> tuple[torch.Tensor, int]:
            x, st = pipe.text_to_image(prompts, steps=k, sampler="ddim", cfg_scale=cfg, seed=seed,
                                       batch_size=len(prompts))
            return x, int(st["forwards"])
        return go

    def i2t(images: torch.Tensor) -> tuple[list[str], int]:
        caps, st = pipe.image_to_text(images, batch_size=len(images))
        return caps, int(st["forwards"])

    rows = [Row(f"transfusion-{k}", "transfusion", "Transfusion", t2i(k), i2t, steps=k, cfg=cfg) for k in steps]
    info = {"folder": str(folder), "parameters": pipe.model.num_params(), **_hybrid_record(folder)}
    return rows, info


# ----- the run ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nexttoken", default="runs/paradigms/nexttoken",
                    help="digits next-token LM run folder (lm/, vocab/)")
    ap.add_argument("--quickstart", default="runs/quickstart-ref", help="quickstart run folder (lm/, vocab/)")
    ap.add_argument("--masked", default="runs/paradigms/masked", help="masked-digits run folder (lm/, vocab/)")
    ap.add_argument("--diffusion", default="runs/paradigms/digits-latent")
    ap.add_argument("--transfusion", default="runs/transfusion/digits")
    ap.add_argument("--masked-steps", default="4,8,16")
    ap.add_argument("--diffusion-steps", default="10,20,50")
    ap.add_argument("--transfusion-steps", default="10,20,50")
    ap.add_argument("--cfg", type=float, default=3.0, help="guidance of the diffusion and Transfusion rows")
    ap.add_argument("--per-digit", type=int, default=5, help="text -> image prompts and image -> text images per digit")
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated paradigms to leave out: nexttoken,quickstart,masked,"
                                               "diffusion,transfusion")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--no-fid", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "paradigms_cpu.json"))
    ap.add_argument("--figure", default="docs/figures/paradigms-digits.png")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    from omnitok.eval.judges.digit_classifier import load_or_train
    from omnitok.eval.judges.digit_text import digit_from_text
    from omnitok.eval.transfusion import held_out_digits

    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
    skip = {s for s in args.skip.split(",") if s}
    rows: list[Row] = []
    models: dict[str, Any] = {}
    if "nexttoken" not in skip:
        r, models["next-token digits LM"] = lm_rows(Path(args.nexttoken), "nexttoken", [])
        rows += r
    if "quickstart" not in skip:
        r, models["quickstart LM"] = lm_rows(Path(args.quickstart), "quickstart", [])
        rows += r
    if "masked" not in skip:
        r, models["masked-digits LM"] = lm_rows(Path(args.masked), "masked", ints(args.masked_steps))
        rows += r
    if "diffusion" not in skip:
        r, models["digits-latent U-Net"] = diffusion_rows(Path(args.diffusion), ints(args.diffusion_steps), args.cfg)
        rows += r
    if "transfusion" not in skip:
        r, models["Transfusion"] = hybrid_rows(Path(args.transfusion), ints(args.transfusion_steps), args.cfg)
        rows += r
    codec = Path("runs/codec/digits/codec/config.json")
    if codec.is_file():
        t = json.loads(codec.read_text()).get("train", {})
        models["digits codec (shared by masked, diffusion, Transfusion)"] = {"train_seconds": t.get("seconds"),
                                                                            "steps": t.get("steps")}
    clf = load_or_train(None, data_root=args.data_root, progress=False)

    n = 10 * args.per_digit
    prompts = [f"the digit {WORDS[i % 10]}" for i in range(n)]
    labels = torch.tensor([i % 10 for i in range(n)])
    batches = [list(range(i, min(i + args.batch_size, n))) for i in range(0, n, args.batch_size)]
    for row in rows:  # warm-up, untimed
        row.t2i(prompts[:2], args.seed)
    load: list[float] = []
    bar = tqdm(total=len(batches) * len(rows), desc="text -> image", file=sys.stderr)
    for b, idx in enumerate(batches):
        load.append(os.getloadavg()[0])
        order = rows[b % len(rows):] + rows[: b % len(rows)]
        for row in order:
            t0 = time.perf_counter()
            x, fw = row.t2i([prompts[i] for i in idx], args.seed + b)
            row.seconds.append((time.perf_counter() - t0) / len(idx))
            row.forwards.append(fw)
            row.images.append(x.float().cpu())
            bar.update(1)
    bar.close()

    # image -> text, once per model that captions (its rows share the figure)
    test_images, test_labels = held_out_digits(args.per_digit, "test", 32, args.data_root)
    captions: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.i2t is None or row.model in captions:
            continue
        caps, secs, fws = [], [], []
        for idx in batches:
            t0 = time.perf_counter()
            c, fw = row.i2t(test_images[idx])
            secs.append((time.perf_counter() - t0) / len(idx))
            caps += c
            fws.append(fw)
        said = [digit_from_text(c) for c in caps]
        captions[row.model] = {
            "accuracy": sum(int(s == int(lab)) for s, lab in zip(said, test_labels)) / len(caps), "images": len(caps),
            "s_per_image": round(statistics.median(secs), 4), "forwards_per_batch": statistics.median(fws),
            "examples": [{"label": int(test_labels[i]), "caption": caps[i]} for i in range(10)]}
        print(f"{row.model} image -> text: {captions[row.model]['accuracy']:.1%}", file=sys.stderr)

    fid_net = real_feats = None
    floor = None
    if not args.no_fid:
        from omnitok.eval.fid import InceptionFID

        fid_net = InceptionFID()
        real_feats = fid_net.features(held_out_digits(args.per_digit, "test", 32, args.data_root)[0])
        val_feats = fid_net.features(held_out_digits(args.per_digit, "val", 32, args.data_root)[0])
        fid_net.real, fid_net.fake = [real_feats], [val_feats]
        floor = fid_net.score()

    out_rows = []
    for row in rows:
        x = torch.cat(row.images)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        pred = clf.predict(x)
        r: dict[str, Any] = {
            "row": row.name, "paradigm": row.paradigm, "model": row.model, **row.info,
            "t2i_accuracy": float((pred == labels).float().mean()), "images": len(x),
            "per_digit": {str(k): float((pred[labels == k] == k).float().mean()) for k in range(10)},
            "s_per_image": round(statistics.median(row.seconds), 4), "s_per_image_all": [round(v, 4) for v in row.seconds],
            "forwards_per_batch": statistics.median(row.forwards),
            "image_side": int(x.shape[-1]),
        }
        if fid_net is not None:
            fid_net.real, fid_net.fake = [real_feats], [fid_net.features(x)]
            r["fid"] = fid_net.score()
        if row.model in captions:
            r["i2t_accuracy"] = captions[row.model]["accuracy"]
        m = models[row.model]
        r |= {"parameters": m["parameters"], "train_minutes": round(m["train_seconds"] / 60, 1),
              "train_steps": m.get("steps")}
        out_rows.append(r)

    result = {
        "benchmark": "paradigms", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["benchmarks/paradigms.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "torch": torch.__version__, "threads": args.threads,
                    "load_average_per_round": [round(v, 2) for v in load]},
        "prompts": n, "batch_size": args.batch_size, "seed": args.seed, "judge_test_accuracy": clf.test_accuracy,
        "fid": {"generated": n, "real": n, "floor_val_vs_test": floor} if floor is not None else None,
        "models": models, "image_to_text": captions, "rows": out_rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.figure:
        figure(result, Path(args.figure))
    print(markdown(result))
    print(f"wrote {out}" + (f" and {args.figure}" if args.figure else ""), file=sys.stderr)
    return 0


def markdown(result: dict[str, Any]) -> str:
    lines = ["| paradigm (model) | setting | text -> image digit accuracy | FID | image -> text accuracy | "
             "forwards / batch | s / image | training minutes (steps) | parameters |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        fid = f"{r['fid']:.1f}" if "fid" in r else "-"
        i2t = f"{r['i2t_accuracy']:.0%}" if "i2t_accuracy" in r else "-"
        lines.append(f"| {r['paradigm']} ({r['model']}) | {r['row']} | {r['t2i_accuracy']:.0%} | {fid} | {i2t} | "
                     f"{r['forwards_per_batch']:g} | {r['s_per_image']:.3f} | {r['train_minutes']:.1f} "
                     f"({r['train_steps']}) | {r['parameters'] / 1e6:.2f} M |")
    return "\n".join(lines)


def figure(result: dict[str, Any], path: Path) -> None:
    """Digit accuracy and FID against seconds per image (log x), one curve per paradigm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    by: dict[str, list[dict[str, Any]]] = {}
    for r in result["rows"]:
        by.setdefault(r["paradigm"], []).append(r)
    for name, rs in by.items():
        rs = sorted(rs, key=lambda r: r["s_per_image"])
        xs = [r["s_per_image"] for r in rs]
        for ax, key in zip(axes, ("t2i_accuracy", "fid")):
            if not all(key in r for r in rs):
                continue
            ys = [100 * r[key] if key == "t2i_accuracy" else r[key] for r in rs]
            ax.plot(xs, ys, "o-", label=name)
            for x, y, r in zip(xs, ys, rs):
                if "steps" in r:
                    ax.annotate(str(r["steps"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes[0].set_ylabel("text -> image digit accuracy (%)")
    axes[1].set_ylabel(f"FID ({result['prompts']} generated vs {result['prompts']} real; lower is better)")
    if result.get("fid") and result["fid"].get("floor_val_vs_test") is not None:
        axes[1].axhline(result["fid"]["floor_val_vs_test"], color="grey", ls="--", lw=1, label="real vs real")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("seconds per image (1 thread, shared CPU)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Digits, {result['prompts']} held-out prompts per row, one run ({result['date']}); numbers: steps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
