"""``write_report(out)``: one self-contained HTML page over ``<out>/eval.json`` and the media files beside it.

Sections: the evaluation table (with the quickstart's targets, met or missed), stage timings, text -> image grids
for every digit and for emoji names, captions of held-out digits and emoji, spoken digit strings with
``<audio>`` players, transcripts of held-out speech, generated moving-digit videos (``<video>``), image <-> speech,
text continuations, and the loss curves (``lm/loss.png``). Media are linked by relative paths, so the folder can
be moved or served as it is.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "target_rows", "write_report"]

#: (task, key, comparison, threshold, label) -- the quickstart's must-show targets (issue 9)
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("t2i", "accuracy", ">=", 0.90, "text -> image digit accuracy >= 90%"),
    ("i2t", "accuracy", ">=", 0.95, "image -> text digit accuracy >= 95%"),
    ("t2s", "wer", "<=", 0.15, "text -> speech WER <= 15%"),
    ("s2t", "wer", "<=", 0.10, "speech -> text WER <= 10%"),
    ("t2v", "frame_accuracy", ">=", 0.90, "text -> video digit accuracy per frame >= 90% (issue 23)"),
    ("t2v", "direction_accuracy", ">=", 0.90, "text -> video direction of motion >= 90% (issue 23)"),
    ("v2t", "digit_accuracy", ">=", 0.90, "video -> text digit accuracy >= 90% (issue 23)"),
    ("v2t", "direction_accuracy", ">=", 0.90, "video -> text direction accuracy >= 90% (issue 23)"),
]

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.met{color:#070;font-weight:bold}.missed{color:#b00;font-weight:bold}
img.px{image-rendering:pixelated;width:64px;height:64px;border:1px solid #ddd}
.row{display:flex;gap:6px;align-items:center;margin:3px 0}.cap{font-size:.9em;color:#444}
.card{display:inline-block;margin:4px 10px 10px 0;vertical-align:top;font-size:.85em;max-width:260px}
video{image-rendering:pixelated;width:128px;height:128px;background:#000}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _rel(path: str | None, out: Path) -> str | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_absolute():
        p = Path.cwd() / p
    return os.path.relpath(p, out.resolve())


def _img(path: str | None, out: Path, title: str = "") -> str:
    r = _rel(path, out)
    return f'<img class="px" src="{_e(r)}" title="{_e(title)}">' if r else ""


def _audio(path: str | None, out: Path) -> str:
    r = _rel(path, out)
    return f'<audio controls preload="none" src="{_e(r)}"></audio>' if r else ""


def _video(path: str | None, out: Path) -> str:
    r = _rel(path, out)
    return f'<video src="{_e(r)}" autoplay loop muted playsinline></video>' if r else ""


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def target_rows(ev: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of :data:`TARGETS` (met None when the task did not run)."""
    rows = []
    for task, key, op, thr, label in TARGETS:
        v = (ev.get("tasks", {}).get(task) or {}).get(key)
        if v is None:
            rows.append((label, "not measured", None))
        else:
            rows.append((label, _pct(v), v >= thr if op == ">=" else v <= thr))
    return rows


def _t2i(t: dict[str, Any], out: Path) -> str:
    parts = [f"<p>Prompts “the digit k”; judge CNN accuracy <b>{_pct(t.get('accuracy'))}</b> "
             f"over {t.get('n')} images" + (f"; FID {t['fid']:.1f} ({t['fid_images']})" if 'fid' in t else "")
             + ".</p>"]
    for row in t.get("samples", []):
        imgs = "".join(_img(f, out, f"judge says {p}") for f, p in zip(row["files"], row["predicted"]))
        parts.append(f'<div class="row"><span class="cap" style="width:120px">{_e(row["prompt"])}</span>{imgs}'
                     f'<span class="cap">judge: {_e(row["predicted"])}</span></div>')
    if t.get("emoji_samples"):
        parts.append("<h3>Emoji names → image (generated | real)</h3>")
        for s in t["emoji_samples"]:
            parts.append(f'<div class="card">{_img(s["file"], out)}{_img(s["real"], out)}<br>{_e(s["prompt"])}</div>')
    return "\n".join(parts)


def _i2t(t: dict[str, Any], out: Path) -> str:
    parts = [f"<p>Held-out digit images; label accuracy <b>{_pct(t.get('accuracy'))}</b> over {t.get('n')}.</p>"]
    for s in t.get("samples", []):
        parts.append(f'<div class="card">{_img(s["file"], out)}<br>true {s["label"]}: “{_e(s["caption"])}”</div>')
    em = t.get("emoji")
    if em:
        parts.append(f"<h3>Emoji names</h3><p>exact match {_pct(em['exact_match'])}, MiniLM similarity "
                     f"{em['minilm_similarity']:.3f} over {em['n']} held-out emoji.</p>")
        for s in em.get("samples", []):
            parts.append(f'<div class="card">{_img(s["file"], out)}<br>true: {_e(s["name"])}<br>model: '
                         f'“{_e(s["generated"])}” ({s["similarity"]:.2f})</div>')
    return "\n".join(parts)


def _wer_line(t: dict[str, Any]) -> str:
    per = ", ".join(f"{e}: {_pct(v['wer'])} (n={v['n']})" for e, v in (t.get("per_engine") or {}).items())
    line = f"WER <b>{_pct(t.get('wer'))}</b> over {t.get('n')} utterances" + (f" [{per}]" if per else "")
    groups = t.get("per_voice_group") or {}
    if groups:  # a speech build with held-out voices: voices heard in training and voices never heard
        line += "; " + ", ".join(f"{g} voices <b>{_pct(v['wer'])}</b> (n={v['n']})" for g, v in groups.items())
    return line


def _t2s(t: dict[str, Any], out: Path) -> str:
    parts = []
    real = t.get("real_recordings") or {}
    parts.append(f"<p>Held-out digit strings, judged by pocketsphinx with a digit grammar: {_wer_line(t)}. "
                 f"The same judge on the real recordings: {_pct(real.get('wer'))}.</p>")
    rr = t.get("rerank")
    if rr:
        length = (t.get("duration_s") or {}).get("length", "")
        parts.append(f"<p>Each utterance is the best of {rr['best_of']} candidates by the model's own {_e(rr['score'])} "
                     f"score (log p(text | speech): the model transcribing its own speech); the first candidate "
                     f"was kept for {_pct(rr['first_draw_kept'])} of the prompts; length: {_e(length)}.</p>")
    parts.append("<table><tr><th>text</th><th>generated</th><th>ASR of generated</th><th>real recording</th></tr>")
    for s in t.get("samples", []):
        parts.append(f"<tr><td>{_e(s['text'])}</td><td>{_audio(s['file'], out)}</td><td>{_e(s['asr'])}</td>"
                     f"<td>{_audio(s['real_file'], out)}</td></tr>")
    return "\n".join(parts) + "</table>"


def _s2t(t: dict[str, Any], out: Path) -> str:
    parts = [f"<p>The model's transcripts of held-out speech: {_wer_line(t)}.</p>"]
    parts.append("<table><tr><th>speech</th><th>true</th><th>model</th></tr>")
    for s in t.get("samples", []):
        parts.append(f"<tr><td>{_audio(s['file'], out)}</td><td>{_e(s['text'])}</td><td>{_e(s['transcript'])}</td></tr>")
    return "\n".join(parts) + "</table>"


def _t2v(t: dict[str, Any], out: Path) -> str:
    parts = [f"<p>Judge CNN accuracy on every frame <b>{_pct(t.get('frame_accuracy'))}</b> ({t.get('frames')} "
             f"frames); direction of motion right <b>{_pct(t.get('direction_accuracy'))}</b> of {t.get('n')} "
             f"(the same judges on the real clips: frames {_pct(t.get('real_frame_accuracy'))}, direction "
             f"{_pct(t.get('real_direction_accuracy'))}).</p>"]
    for s in t.get("samples", []):
        vid = _video(s.get("file"), out)
        strip = _rel(s.get("frames_file"), out)  # first | middle | last frame
        still = f'<br><img src="{_e(strip)}" style="image-rendering:pixelated;height:64px">' if strip else ""
        parts.append(f'<div class="card">{vid}{still}<br>{_e(s["prompt"])}<br>moves: {_e(s["direction"])}; '
                     f'frames read as {_e(s["frame_digits"])}</div>')
    return "\n".join(parts)


def _v2t(t: dict[str, Any], out: Path) -> str:
    parts = [f"<p>Held-out clips of one moving digit; the caption names the digit in "
             f"<b>{_pct(t.get('digit_accuracy'))}</b> and the direction in <b>{_pct(t.get('direction_accuracy'))}"
             f"</b> of {t.get('n')} (both: {_pct(t.get('both_accuracy'))}).</p>"]
    for s in t.get("samples", []):
        vid = _video(s.get("file"), out)
        parts.append(f'<div class="card">{vid}<br>true: {_e(s["caption"])}<br>model: “{_e(s["generated"])}”</div>')
    return "\n".join(parts)


def _cross(t: dict[str, Any], out: Path) -> str:
    """``t``: the i2s and s2i results (either may be missing)."""
    i2s, s2i = t.get("i2s"), t.get("s2i")
    parts = []
    if i2s and "error" not in i2s:
        parts.append(f"<p>Image → speech: the ASR judge hears the image's digit in <b>{_pct(i2s.get('accuracy'))}</b> "
                     f"of {i2s.get('n')}.</p>")
        for s in i2s.get("samples", []):
            parts.append(f'<div class="card">{_img(s["file"], out)}{_audio(s["audio"], out)}<br>heard: {_e(s["asr"])}</div>')
    elif i2s:
        parts.append(f"<p>image → speech error: {_e(i2s['error'])}</p>")
    if s2i and "error" not in s2i:
        parts.append(f"<p>Speech → image: the judge CNN reads the spoken digit in <b>{_pct(s2i.get('accuracy'))}</b> "
                     f"of {s2i.get('n')}.</p>")
        for s in s2i.get("samples", []):
            parts.append(f'<div class="card">{_audio(s["audio"], out)}{_img(s["file"], out)}<br>said “{_e(s["text"])}”, '
                         f"judge reads {s['predicted']}</div>")
    elif s2i:
        parts.append(f"<p>speech → image error: {_e(s2i['error'])}</p>")
    return "\n".join(parts)


def _text(t: dict[str, Any], out: Path) -> str:
    parts = [f"<p>Held-out text: {t['nll_per_token']:.3f} nats per token (perplexity {t['perplexity']:.1f}) "
             f"over {t['tokens']} tokens.</p><table><tr><th>prompt</th><th>model</th><th>original</th></tr>"]
    for s in t.get("samples", []):
        parts.append(f"<tr><td>{_e(s['prompt'])}</td><td>{_e(s['continuation'])}</td><td>{_e(s['truth'])}</td></tr>")
    return "\n".join(parts) + "</table>"


#: (task, heading, the section's body after the heading) in page order; "cross" is image <-> speech (two tasks)
SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any], Path], str]], ...] = (
    ("t2i", "Text → image", _t2i), ("i2t", "Image → text", _i2t), ("t2s", "Text → speech", _t2s),
    ("s2t", "Speech → text", _s2t), ("t2v", "Text → video", _t2v), ("v2t", "Video → text", _v2t),
    ("cross", "Image ↔ speech", _cross), ("text", "Text continuation", _text))


def write_report(out: str | os.PathLike, timings: dict[str, Any] | None = None,
                 title: str = "omnitok quickstart") -> Path:
    """Write ``<out>/report.html`` from ``<out>/eval.json`` (+ ``lm/loss.png``, ``timings.json``)."""
    from omnitok.eval.harness import summary_rows

    out = Path(out)
    ev_path = out / "eval.json"
    if not ev_path.is_file():
        raise ValueError(f"{ev_path} does not exist: run the eval stage first")
    ev = json.loads(ev_path.read_text())
    if timings is None and (out / "timings.json").is_file():
        timings = json.loads((out / "timings.json").read_text())
    tasks = ev.get("tasks", {})
    body = [f"<h1>{_e(title)}</h1>",
            f"<p>Model <code>{_e(ev.get('ckpt', ''))}</code>; settings: limit {ev.get('settings', {}).get('limit')}, "
            f"seed {ev.get('settings', {}).get('seed')}. Every figure below was produced by this run.</p>"]
    body.append("<h2>Targets</h2><table><tr><th>target</th><th>measured</th><th></th></tr>")
    for label, value, met in target_rows(ev):
        cls, word = ("met", "met") if met else (("missed", "missed") if met is not None else ("", ""))
        body.append(f'<tr><td>{_e(label)}</td><td>{_e(value)}</td><td class="{cls}">{word}</td></tr>')
    body.append("</table><h2>Evaluation</h2><table><tr><th>task</th><th>figure</th><th>value</th></tr>")
    for task, name, value in summary_rows(ev):
        body.append(f"<tr><td>{_e(task)}</td><td>{_e(name)}</td><td>{_e(value)}</td></tr>")
    body.append("</table>")
    judges = ev.get("judges", {})
    if judges.get("digit_classifier"):
        dc = judges["digit_classifier"]
        body.append(f"<p>Digit judge: a CNN trained on real digits only; its own test accuracy "
                    f"<b>{_pct(dc.get('test_accuracy'))}</b> ({dc.get('test_images', '?')} test images).</p>")
    if timings:
        body.append("<h2>Stage times</h2><table><tr><th>stage</th><th>wall s</th><th>CPU s</th></tr>")
        for k, v in timings.items():
            body.append(f"<tr><td>{_e(k)}</td><td>{v.get('wall_s')}</td><td>{v.get('cpu_s')}</td></tr>")
        body.append("</table>")
    loss = out / "lm" / "loss.png"
    if loss.is_file():
        body.append(f'<h2>Loss curves</h2><img src="{_e(os.path.relpath(loss, out))}" style="max-width:100%">')
    for task, heading, section in SECTIONS:
        t = ({k: tasks[k] for k in ("i2s", "s2i") if k in tasks} or None) if task == "cross" else tasks.get(task)
        if t is None:
            continue
        if "error" in t:
            body.append(f"<h2>{heading}</h2><p>error: {_e(t['error'])}</p>")
        else:
            text = section(t, out)
            body.append(f"<h2>{heading}</h2>" + ("\n" + text if text else ""))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
