"""The served model and its batcher: requests for the same output modality and settings share one ``generate``.

One worker thread owns the model. A request becomes a :class:`Job` (prompt segments, rows, settings); the worker
takes the oldest waiting job and waits for more jobs with the same modality and settings until it has as many rows
as the last batch of that modality had, or ``max_wait`` seconds have passed *since that job's arrival*; then it
runs them as one left-padded batch of at most ``max_batch`` rows (a job is never split). A lone client therefore
never waits, and C steady clients are served in batches of C. While a batch runs, new jobs queue up, so under
load the next batch forms without waiting: the dynamic batching of inference servers, without continuous
(per-step) batching.

A job that sets a ``seed`` runs alone: ``generate`` draws one random stream for the whole batch, so the same seed
gives the same output only when the batch is the same (the request alone).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnitok.generation.generate import GenerationOutput, generate
from omnitok.model.transformer import Transformer
from omnitok.vocab.document import Segment
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["Batcher", "Job", "ServedModel", "TextStream", "load_served_model"]

TextCallback = Callable[[int, str], None]  # (row within the job, new text)


@dataclass
class ServedModel:
    """The model, its vocabulary and the media sizes its codecs were trained on."""

    model: Transformer
    vocab: Vocabulary
    name: str
    ckpt: Path
    vocab_dir: Path
    image_size: int | None = None  # side of the square images the image codec was trained on
    video_size: int | None = None
    video_frames: int | None = None
    video_fps: float = 8.0
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def modalities(self) -> list[str]:
        return sorted(self.vocab.codecs)

    def image_grid(self, height: int, width: int) -> tuple[int, int]:
        """Pixels -> the image codec's code grid (ValueError when the codec cannot make that size)."""
        g = self.vocab.codecs["image"].code_grid((3, height, width))
        return int(g[0]), int(g[1])

    def video_grid(self, height: int, width: int) -> tuple[int, int, int]:
        """Pixels -> the video codec's code grid for a clip of the length it was trained on."""
        codec = self.vocab.codecs["video"]
        t = self.video_frames or 5
        g = codec.code_grid((3, t, height, width))
        return int(g[0]), int(g[1]), int(g[2])

    @property
    def audio_rate(self) -> int:
        return int(getattr(self.vocab.codecs["audio"], "sample_rate", 16000))

    @property
    def audio_frames_per_second(self) -> float:
        codec = self.vocab.codecs["audio"]
        return self.audio_rate / int(getattr(codec, "hop", None) or codec.config.get("hop", 320))


def load_served_model(ckpt: str, vocab: str | None, device: str = "auto", name: str | None = None) -> ServedModel:
    """Load the model and vocabulary once, as ``omnitok generate`` does (same folder rules, same checks)."""
    from omnitok.data.tokenize import codec_preset_data
    from omnitok.generation.loading import load_model

    model, voc, path, vocab_dir = load_model(ckpt, vocab, device)
    model.eval()
    served = ServedModel(model=model, vocab=voc, name=name or "omnitok", ckpt=path, vocab_dir=vocab_dir)
    for m in voc.codecs:
        voc.codecs[m].eval()
    img = codec_preset_data(vocab_dir, {}, "image")
    vid = codec_preset_data(vocab_dir, {}, "video")
    served.image_size = int(img["size"]) if img.get("size") else None
    served.video_size = int(vid["size"]) if vid.get("size") else None
    served.video_frames = int(vid["frames"]) if vid.get("frames") else None
    served.video_fps = float(vid.get("fps") or 8.0)  # the video data's default rate
    return served


class TextStream:
    """Generated text ids of one row -> new text as soon as it decodes cleanly (no half UTF-8 character)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.end = vocab.end_id("text")
        self.offset = vocab.entries["text"].offset
        self.ids: list[int] = []
        self.text = ""
        self.finished = False

    def push(self, token: int) -> str:
        """Add one generated id; returns the text it completes ('' when none yet or after the end)."""
        if self.finished:
            return ""
        if token == self.end:
            self.finished = True
            return ""
        self.ids.append(token)
        text = self.vocab.codecs["text"].decode([torch.tensor(self.ids) - self.offset])[0]
        if not text.startswith(self.text) or text.endswith("\ufffd"):
            return ""
        new, self.text = text[len(self.text):], text
        return new


@dataclass
class Job:
    """One request: ``rows`` outputs of ``produce`` after ``prompt``; ``settings`` go to ``generate``."""

    produce: str
    prompt: list[Segment]
    rows: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    on_text: TextCallback | None = None  # text only: streaming, called from the worker thread
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)
    serial: int = 0

    def key(self) -> tuple:
        """Jobs with equal keys can share a batch (a seeded job's key is unique: it runs alone)."""
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in self.settings.items()))
        alone = self.serial if self.settings.get("seed") is not None else -1
        return (self.produce, items, alone)


class Batcher:
    """The worker thread that runs jobs in batches (see the module docstring)."""

    def __init__(self, served: ServedModel, max_batch: int = 16, max_wait: float = 0.01) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.served, self.max_batch, self.max_wait = served, max_batch, max_wait
        self.pending: list[Job] = []
        self.cond = threading.Condition()
        self.serials = itertools.count()
        self.batches: list[int] = []  # rows of each batch run (the last 1,000), for the stats endpoint and tests
        self.last_rows: dict[str, int] = {}  # modality -> rows of its last batch (how many to wait for)
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="omnitok-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> Future:
        if job.rows > self.max_batch:
            raise ValueError(f"n={job.rows} is more than the server's batch of {self.max_batch} rows")
        with self.cond:
            if self.closed:
                raise RuntimeError("the server is shutting down")
            job.serial = next(self.serials)
            job.arrived = time.monotonic()
            self.pending.append(job)
            self.cond.notify_all()
        return job.future

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(timeout=30)

    # ----- the worker ----------------------------------------------------------------------------------------
    def _take(self) -> list[Job] | None:
        """Wait for the oldest job, then for companions until the batch is full or its wait is over."""
        with self.cond:
            while not self.pending and not self.closed:
                self.cond.wait()
            if self.closed:
                return None
            first = self.pending[0]
            key = first.key()
            # expect as many rows as the last batch of this modality had: one client alone never waits, and a
            # steady load of C clients runs as soon as its C requests are back (a batch of 1 waits for no one)
            target = min(self.max_batch, self.last_rows.get(first.produce, 1))
            while True:
                rows = sum(j.rows for j in self.pending if j.key() == key)
                left = first.arrived + self.max_wait - time.monotonic()
                if rows >= target or left <= 0 or first.settings.get("seed") is not None:
                    break
                self.cond.wait(left)
            batch, total = [], 0
            for j in list(self.pending):
                if j.key() == key and total + j.rows <= self.max_batch:
                    batch.append(j)
                    total += j.rows
                    self.pending.remove(j)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not all(j.future.set_running_or_notify_cancel() for j in batch):
                batch = [j for j in batch if not j.future.cancelled()]
                if not batch:
                    continue
            try:
                outs = self._run(batch)
            except Exception as e:  # the batch's requests get the error; the worker goes on
                for j in batch:
                    j.future.set_exception(e)
                continue
            for j, out in zip(batch, outs):
                j.future.set_result(out)

    def _run(self, batch: Sequence[Job]) -> list[GenerationOutput]:
        """One ``generate`` over every row of the batch; each job gets its own rows back."""
        first = batch[0]
        prompts = [j.prompt for j in batch for _ in range(j.rows)]
        owners = [(j, r) for j in batch for r in range(j.rows)]
        on_token = None
        if first.produce == "text" and any(j.on_text is not None for j in batch):
            streams = [TextStream(self.served.vocab) for _ in owners]

            def on_token(step: int, ids: torch.Tensor) -> None:
                for (job, r), st, tok in zip(owners, streams, ids.tolist()):
                    new = st.push(int(tok))
                    if new and job.on_text is not None:
                        job.on_text(r, new)

        out = generate(self.served.model, self.served.vocab, prompts, first.produce, on_token=on_token,
                       **first.settings)
        self.batches = (self.batches + [len(prompts)])[-1000:]
        if first.settings.get("seed") is None:  # a seeded job runs alone whatever the load
            self.last_rows[first.produce] = len(prompts)
        stats = dict(out.stats, batch_rows=len(prompts), batch_requests=len(batch))
        results, i = [], 0
        for j in batch:
            results.append(GenerationOutput(out.documents[i:i + j.rows], out.ids[i:i + j.rows], stats))
            i += j.rows
        return results
