"""``omnitok eval clip CKPT [--split test] [--out DIR] [--limit N]``: judge an alignment model on held-out pairs.

* **zero-shot digits** (image tower): each held-out MNIST digit is classified by the nearest of ten class
  embeddings, each the normalised mean of the prompt templates below (CLIP, arXiv 2103.00020, sec. 3.1.4); the
  accuracy of each template alone is reported too, with the mean margin (cosine to the right class minus the
  best wrong one) and how close the prompts of one digit sit (``prompt_cos_same_digit``) against two digits'.
* **emoji retrieval** (image tower): image -> name and name -> image R@1 / R@5 among the held-out emoji; the
  candidates are the distinct names (a hit is any image or name of the right name).
* **CLIPScore on emoji** (Hessel et al. 2021, arXiv 2104.08718): ``2.5 * max(cos, 0)`` of each held-out emoji
  and its own name against the same image with another image's (different) name: the two means, how often the
  true name scores higher, and the ROC AUC between the two sets of scores. This is the calibration that makes the
  score usable as a judge of text -> image samples where no classifier exists.
* **speech retrieval** (audio tower): spoken digit strings (speech ``kind`` digits) <-> their transcripts R@1 /
  R@5, among the distinct transcripts; headline on strings of two or more digits, single digits reported apart.

Writes ``<out>/metrics.json`` (default ``<CKPT>/eval-clip-<split>/``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnitok._io import write_json_atomic
from omnitok.align.api import clip_score, encode_audio, encode_image, encode_text, similarity
from omnitok.align.model import AlignModel
from omnitok.data.pairs import load_pairs
from omnitok.data.sources.digits import DIGIT_WORDS

__all__ = ["DIGIT_TEMPLATES", "add_arguments", "evaluate", "recall_at", "run", "zero_shot_digits"]

# prompts for zero-shot classification; the first four are not among the digits dataset's caption templates
DIGIT_TEMPLATES = (
    "a photo of the digit {word}",
    "the digit {digit}",
    "a picture of the number {word}",
    "a drawing of a {digit}",
    "a handwritten {word}",
    "{word}",
)


def recall_at(sim: Tensor, query_labels: Tensor, cand_labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """sim (Q, C) similarities; a query hits at k when one of its k most similar candidates has its label."""
    order = sim.argsort(dim=1, descending=True)  # (Q, C)
    hits = cand_labels[order] == query_labels[:, None]  # (Q, C)
    return {f"R@{k}": float(hits[:, :k].any(1).float().mean()) for k in ks}


def _retrieval(media: Tensor, texts: list[str], text_emb_of: dict[str, Tensor]) -> dict[str, Any]:
    """media (N, D) with captions ``texts``; the candidates of media -> text are the distinct captions."""
    names = sorted(set(texts))
    ids = {n: i for i, n in enumerate(names)}
    labels = torch.tensor([ids[t] for t in texts])
    cand = torch.stack([text_emb_of[n] for n in names])  # (M, D)
    sim = similarity(media, cand)  # (N, M)
    return {"pairs": len(texts), "distinct_texts": len(names),
            "media_to_text": recall_at(sim, labels, torch.arange(len(names))),
            "text_to_media": recall_at(sim.T, torch.arange(len(names)), labels)}


def zero_shot_digits(model: AlignModel, images: Tensor, labels: Tensor,
                     templates: tuple[str, ...] = DIGIT_TEMPLATES) -> dict[str, Any]:
    """Accuracy of the nearest class embedding (mean of the templates) and of each template alone."""
    img = encode_image(model, images)  # (N, D)
    per_template = {}
    embs = []
    for tpl in templates:
        emb = encode_text(model, [tpl.format(word=w, digit=d) for d, w in enumerate(DIGIT_WORDS)])  # (10, D)
        embs.append(emb)
        per_template[tpl] = float((similarity(img, emb).argmax(1) == labels).float().mean())
    prompts = torch.stack(embs, 1)  # (10, T, D)
    sim = similarity(img, prompts.sum(1))  # (N, 10)
    own = sim.gather(1, labels[:, None])[:, 0]
    other = sim.scatter(1, labels[:, None], float("-inf")).amax(1)
    # how the prompts sit: cosine between two templates of one digit, and between prompts of two digits
    t = torch.nn.functional.normalize(prompts.flatten(0, 1), dim=-1)  # (10 T, D)
    cls = torch.arange(10).repeat_interleave(len(templates))
    cos = t @ t.T
    same = (cls[:, None] == cls[None, :]) & ~torch.eye(len(cls), dtype=torch.bool)
    return {"images": int(labels.numel()), "accuracy": float((sim.argmax(1) == labels).float().mean()),
            "margin": float((own - other).mean()), "templates": list(templates), "per_template": per_template,
            "prompt_cos_same_digit": float(cos[same].mean()),
            "prompt_cos_other_digit": float(cos[cls[:, None] != cls[None, :]].mean())}


def _clip_scores(img: Tensor, texts: list[str], text_emb_of: dict[str, Tensor], seed: int = 0) -> dict[str, Any]:
    """CLIPScore of true pairs against shuffled pairs (each image with another image's, different, name)."""
    n = len(texts)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    for i in range(n):  # move a partner with the same name on, so every shuffled pair is a wrong name
        j = 0
        while texts[int(perm[i])] == texts[i] and j < n:
            perm[i], perm[(i + 1 + j) % n] = perm[(i + 1 + j) % n].clone(), perm[i].clone()
            j += 1
    true_t = torch.stack([text_emb_of[t] for t in texts])
    shuf_t = torch.stack([text_emb_of[texts[int(p)]] for p in perm])
    s_true, s_shuf = clip_score(img, true_t), clip_score(img, shuf_t)
    # ROC AUC (Mann-Whitney): P(a true pair outscores a shuffled pair), ties count a half
    diff = s_true[:, None] - s_shuf[None, :]
    auc = float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())
    return {"pairs": n, "true_mean": float(s_true.mean()), "true_std": float(s_true.std()),
            "shuffled_mean": float(s_shuf.mean()), "shuffled_std": float(s_shuf.std()),
            "true_above_shuffled": float((s_true > s_shuf).float().mean()), "auc": auc,
            "wrong_names": int(sum(texts[int(p)] != texts[i] for i, p in enumerate(perm)))}


def evaluate(model: AlignModel, split: str = "test", limit: int | None = None, root: str | None = None,
             digits: str = "digits", emoji: str = "emoji", speech: str = "speech",
             progress: bool = True) -> dict[str, Any]:
    """Every judgement the model's towers allow, on ``split`` of the named datasets (a missing one is noted)."""
    out: dict[str, Any] = {"split": split}
    skipped: dict[str, str] = {}
    if model.config.image is not None:
        side = model.config.image.image_size
        try:
            d = load_pairs(digits, split, "image", image_size=side, label="label", root=root, limit=limit,
                           progress=progress)
            out["zero_shot_digits"] = zero_shot_digits(model, d.images, d.labels)
        except ValueError as e:
            skipped["zero_shot_digits"] = str(e)
        try:
            e_ = load_pairs(emoji, split, "image", image_size=side, root=root, limit=limit, progress=progress)
            img = encode_image(model, e_.images)
            names = sorted(set(e_.captions))
            text_emb_of = dict(zip(names, encode_text(model, names)))
            out["emoji_retrieval"] = _retrieval(img, e_.captions, text_emb_of)
            out["emoji_clipscore"] = _clip_scores(img, e_.captions, text_emb_of)
        except ValueError as e:
            skipped["emoji"] = str(e)
    if model.config.audio is not None:
        try:
            s = load_pairs(speech, split, "audio", sample_rate=model.config.audio.sample_rate, kinds=["digits"],
                           root=root, limit=limit, progress=progress)
            clips = [s.clip(i) for i in range(len(s))]
            emb = encode_audio(model, clips, s.sample_rate)
            names = sorted(set(s.captions))
            text_emb_of = dict(zip(names, encode_text(model, names)))
            multi = [i for i, m in enumerate(s.meta) if len(str(m.get("digits", ""))) >= 2]
            single = [i for i, m in enumerate(s.meta) if len(str(m.get("digits", ""))) == 1]
            out["speech_retrieval"] = _retrieval(emb[multi], [s.captions[i] for i in multi], text_emb_of) \
                if multi else {}
            out["speech_retrieval_single_digits"] = _retrieval(emb[single], [s.captions[i] for i in single],
                                                               text_emb_of) if single else {}
        except ValueError as e:
            skipped["speech_retrieval"] = str(e)
    if skipped:
        out["skipped"] = skipped
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="AlignModel folder (runs/clip/NAME/final)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--out", default=None, help="output folder (default CKPT/eval-clip-SPLIT)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N examples of each dataset")
    parser.add_argument("--root", default=None, help="omnitok cache root holding the datasets")
    parser.add_argument("--digits", default="digits", help="digits dataset (name or folder)")
    parser.add_argument("--emoji", default="emoji", help="emoji dataset (name or folder)")
    parser.add_argument("--speech", default="speech", help="speech dataset (name or folder)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    checkpoint = Path(args.checkpoint)
    model = AlignModel.from_pretrained(checkpoint, map_location=args.device)
    t0 = time.perf_counter()
    result = evaluate(model, args.split, args.limit, args.root, args.digits, args.emoji, args.speech,
                      progress=not args.no_progress)
    result.update(checkpoint=str(checkpoint), weights_sha256=model.info.get("weights_sha256"),
                  training=model.info.get("training"), eval_seconds=round(time.perf_counter() - t0, 1))
    out_dir = Path(args.out) if args.out else checkpoint / f"eval-clip-{args.split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "metrics.json", result)
    print(json.dumps(result, indent=2))
    return 0
