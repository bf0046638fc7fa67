"""``generate(model, vocab, prompt, produce=...)``: any modality out, valid by construction.

Pipeline: prompts -> ``vocab.encode_prompt`` (conditional, and ``<|uncond|>`` rows for CFG) -> left padding
into one batch ``[cond rows; uncond rows]`` -> a static KV cache (prefill, then one-token steps) -> per step:
guidance, the constraint table, temperature / top-k / top-p, a draw on the device -> ``vocab.decode`` of
prompt + generated ids -> documents whose last segment is the generated one.

Three decoders share the prompt handling, the constraint table and the sampler:

* ``method="cached"`` (default): prefill + fixed-shape decode steps (a CUDA graph on GPU), no host sync per
  step unless ``on_token`` asks for the tokens (text stops are checked every ``check_every`` steps);
* ``method="jacobi"``: speculative Jacobi decoding (:mod:`omnitok.generation.jacobi`), image / video / audio;
* ``method="masked"``: masked parallel decoding (:mod:`omnitok.generation.masked`), an image in ``steps``
  forwards, for a model trained with masked-image documents (a vocabulary with ``<|mask|>``);
* ``method="naive"``: the reference loop: no cache, the whole sequence through the model every step, the
  conditional and unconditional branches as separate passes (tests and the benchmark compare against it).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from omnitok.generation.cfg import batch_rows, guidance_scales, guide
from omnitok.generation.constraints import StepTable, step_table
from omnitok.generation.jacobi import decode_jacobi
from omnitok.generation.masked import decode_masked
from omnitok.generation.sampling import SamplingParams, sample
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer
from omnitok.vocab.document import Document, Segment, Text, Uncond
from omnitok.vocab.vocabulary import Vocabulary

__all__ = ["MODALITY_DEFAULTS", "GenerationOutput", "GenerationRequest", "check_grid", "decode_cached", "decode_naive",
           "default_grid", "generate", "left_pad", "prepare_prompts", "recorded_defaults"]

#: per-modality sampling defaults (Emu3.5 samples text and images differently; MusicGen uses top-k 250, CFG 3)
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "text": {"temperature": 0.7, "top_k": 0, "top_p": 0.9, "cfg_scale": 1.0, "max_new_tokens": 256},
    "image": {"temperature": 1.0, "top_k": 1000, "top_p": 1.0, "cfg_scale": 3.0},
    "audio": {"temperature": 1.0, "top_k": 250, "top_p": 1.0, "cfg_scale": 3.0},
    "video": {"temperature": 1.0, "top_k": 1000, "top_p": 1.0, "cfg_scale": 3.0},
}
METHODS = ("cached", "jacobi", "naive", "masked")

Prompt = str | Segment | Document | Sequence[Segment] | None
TokenCallback = Callable[[int, Tensor], None]


@dataclass(frozen=True)
class GenerationRequest:
    """Every setting of one :func:`generate` call (what to produce, grid, guidance, sampling, decoder, reranking) as
    one typed object: ``generate(model, vocab, prompt, request=GenerationRequest("audio", cfg_scale=1.0))``. The
    fields are generate's keywords with the same meanings and defaults (None = the modality's default,
    :data:`MODALITY_DEFAULTS`, or the model's recorded one); ``with_(**changes)`` returns a changed copy and names
    an unknown field in a ValueError."""

    produce: str = "image"
    grid: Sequence[int] | None = None
    cfg_scale: float | None = None
    cfg_schedule: str = "constant"
    cfg_interval: Sequence[float] | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    max_new_tokens: int | None = None
    num_samples: int = 1
    on_token: TokenCallback | None = None
    method: str = "cached"
    jacobi_window: int | None = None
    decode_data: bool = True
    check_every: int = 16
    cuda_graph: bool = True
    until_end: bool = False
    min_frames: int = 1
    best_of: int = 1
    rerank: str = "reverse"
    steps: int | None = None
    cap_transcripts: bool = True

    def with_(self, **changes: Any) -> GenerationRequest:
        bad = sorted(set(changes) - set(self.__dataclass_fields__))
        if bad:
            raise ValueError(f"GenerationRequest: unknown setting(s) {bad}; known: {sorted(self.__dataclass_fields__)}")
        return replace(self, **changes)

    def kwargs(self) -> dict[str, Any]:
        """The fields as generate()'s keywords (``produce`` included)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class GenerationOutput:
    """One row per (prompt, sample), prompt-major: rows ``i * num_samples .. (i+1) * num_samples - 1`` belong
    to prompt i.

    documents: prompt + generated segment, decoded (the generated segment is ``documents[r].segments[-1]``,
    with its raw data filled when the vocabulary has that codec loaded).
    ids: the generated ids of each row (the target segment after the prompt's head, END included).
    stats: ``forwards``, ``tokens``, ``seconds``, ``tokens_per_s``, ``accepted_per_step`` (Jacobi).
    """

    documents: list[Document]
    ids: list[Tensor]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> list[Segment]:
        """The generated segment of each row."""
        return [d.segments[-1] for d in self.documents]

    def __len__(self) -> int:
        return len(self.documents)


# ----- prompts ------------------------------------------------------------------------------------------
def _as_segments(p: Prompt) -> list[Segment]:
    if p is None:
        return []
    if isinstance(p, str):
        return [Text(text=p)] if p else []
    if isinstance(p, Document):
        return list(p.segments)
    if isinstance(p, Segment):
        return [p]
    if isinstance(p, list | tuple) and all(isinstance(s, Segment) for s in p):
        return list(p)
    raise ValueError(f"prompt: expected a str, a segment (Text/Image/Audio/Video), a Document or a list of "
                     f"segments, got {type(p).__name__}")


def _split_batch(prompt: Any) -> list[Prompt]:
    """A list whose items are prompts (str / Document / list of segments) is a batch; anything else is one."""
    if isinstance(prompt, list | tuple) and prompt and not all(isinstance(s, Segment) for s in prompt):
        return list(prompt)
    return [prompt]


def recorded_defaults(model: Transformer, produce: str) -> dict[str, Any]:
    """What the model folder recorded for ``produce`` (``generation_config.json``, written by the LM trainer and
    by ``omnitok eval model``): ``grid`` (the grid it was trained on; audio: the longest clip, a cap with
    ``until_end``), ``until_end`` and sampling settings chosen by its evaluation. {} when nothing was recorded."""
    gc = getattr(model, "generation_config", None) or {}
    out: dict[str, Any] = dict((gc.get("sampling") or {}).get(produce) or {})
    out = {k: v for k, v in out.items() if k in ("cfg_scale", "temperature", "top_k", "top_p", "until_end")}
    grid = (gc.get("grids") or {}).get(produce)
    if grid:
        out["grid"] = tuple(int(g) for g in grid)
    return out


#: the most ids one generated segment may have, whatever the model's context (a bound checked before any
#: allocation, so a grid of 10**6 x 10**6 is refused at once)
MAX_GRID_IDS = 1 << 20


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def check_grid(vocab: Vocabulary, produce: str, grid: Sequence[int], max_seq_len: int) -> tuple[int, ...]:
    """``grid`` as a tuple of ints, or a ValueError naming what is wrong with it: whole numbers >= 1, the number
    of axes of ``produce``, within the vocabulary's size tokens, and an id count the model's context can hold."""
    if produce == "text":
        raise ValueError("grid: text takes no grid; use max_new_tokens")
    want = {"image": "(height, width)", "video": "(frames, height, width)", "audio": "(frames,)"}[produce]
    if isinstance(grid, str | bytes) or not isinstance(grid, Sequence):
        raise ValueError(f"grid: expected {_a(produce)} grid {want}, got {grid!r}")
    if len(grid) != len(want.split(",")) - (produce == "audio"):
        raise ValueError(f"grid: {_a(produce)} grid is {want}, got {tuple(grid)!r}")
    out = []
    for g in grid:
        if isinstance(g, bool) or not isinstance(g, int | np.integer) or g < 1:
            raise ValueError(f"grid: every size must be a whole number >= 1, got {tuple(grid)!r}")
        out.append(int(g))
    sp = vocab.specials
    limits = {"image": (sp.max_height, sp.max_width), "video": (sp.max_frames, sp.max_height, sp.max_width)}
    for size, limit, axis in zip(out, limits.get(produce, ()), ("frames",) * (produce == "video") + ("height", "width")):
        if size > limit:
            raise ValueError(f"grid: {produce} {axis} {size} is more than the vocabulary's largest ({limit}); "
                             f"grid {tuple(out)!r}")
    ids = math.prod(out)
    if ids > min(max_seq_len, MAX_GRID_IDS):
        raise ValueError(f"grid: {_a(produce)} of {tuple(out)!r} needs at least {ids} ids, more than the model's "
                         f"context of {max_seq_len}")
    return tuple(out)


def default_grid(vocab: Vocabulary, produce: str, max_new_tokens: int | None = None) -> tuple[int, ...] | None:
    """16 x 16 images, 4 x 8 x 8 videos, audio frames from ``max_new_tokens`` (default 400 ids), capped by the
    vocabulary's size tokens; None for text."""
    sp = vocab.specials
    if produce == "image":
        return (min(16, sp.max_height), min(16, sp.max_width))
    if produce == "video":
        return (min(4, sp.max_frames), min(8, sp.max_height), min(8, sp.max_width))
    if produce == "audio":
        n_q = vocab._entry("audio").num_codebooks
        delay = vocab.audio_pattern == "delay" and n_q > 1
        T = (max_new_tokens or 400) // n_q - (n_q - 1 if delay else 0)
        return (max(T, 1),)
    return None


def prepare_prompts(vocab: Vocabulary, prompts: Sequence[Prompt], produce: str, grid: Sequence[int] | None,
                    num_samples: int = 1, cfg: bool = False) -> tuple[list[Tensor], list[Tensor]]:
    """-> (conditional prompt ids per row, unconditional prompt ids per row or []), rows prompt-major."""
    segs = [_as_segments(p) for p in prompts]
    grid = grid if produce in ("image", "video") else None  # audio / text prompts carry no size tokens
    docs = [Document(s, bos=True, eos=False) for s in segs]
    raw = [d for d in docs if any(not isinstance(s, Uncond) and s.codes is None for s in d.segments)]
    if raw:
        vocab.fill_codes(raw)
    cond = [vocab.encode_prompt(d, produce, grid) for d in docs]
    rows = [c for c in cond for _ in range(num_samples)]
    if not cfg:
        return rows, []
    unc = vocab.encode_prompt([], produce, grid, uncond=True)
    return rows, [unc.clone() for _ in rows]


def left_pad(seqs: Sequence[Tensor], pad_id: int) -> tuple[Tensor, Tensor]:
    """1-D id tensors -> ids (N, P) left-padded with pad_id, mask (N, P) bool (True on real tokens)."""
    P = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), P), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), P, dtype=torch.bool)
    for r, s in enumerate(seqs):
        ids[r, P - len(s):] = s
        mask[r, P - len(s):] = True
    return ids, mask


# ----- decoders ----------------------------------------------------------------------------------------
class _DecodeStep:
    """``cache.decode_step`` as a captured CUDA graph on GPU (static input / output buffers), eager elsewhere."""

    def __init__(self, cache: StaticKVCache, cuda_graph: bool) -> None:
        self.cache = cache
        self.use_graph = cuda_graph and cache.device.type == "cuda"
        self.graph: Any = None

    def __call__(self, tok: Tensor) -> Tensor:  # tok (N, 1) -> logits (N, 1, V)
        if not self.use_graph:
            return self.cache.decode_step(tok)
        if self.graph is None:
            self._capture(tok)
        self.static_in.copy_(tok)
        self.graph.replay()
        return self.static_out

    def _capture(self, tok: Tensor) -> None:
        self.static_in = tok.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up (allocator, kernels) outside the graph, then undo it
            for _ in range(2):
                self.cache.decode_step(self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.cache.rewind(2)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self.cache.decode_step(self.static_in)


@torch.no_grad()
def decode_cached(model: Transformer, ids: Tensor, mask: Tensor, table: StepTable, params: SamplingParams,
                  scales: Tensor | None = None, generator: torch.Generator | None = None,
                  on_token: TokenCallback | None = None, check_every: int = 16,
                  cuda_graph: bool = True) -> tuple[Tensor, dict[str, Any]]:
    """Static-KV-cache decoding. ids, mask (N, P) left-padded prompts (N = 2B with CFG: cond rows, then
    uncond rows); scales (S,) or None. Returns (tokens (B, S), stats); tokens after a row's stop id are junk.

    on_token(step, ids (B,) on the CPU) is called after each step (this syncs with the device).
    """
    t0 = time.perf_counter()
    device = ids.device
    N, P, B, cfg = batch_rows(ids, scales)
    S = table.num_steps
    table = table.to(device)
    index = table.index.tolist()  # host copy: bias rows are picked with Python ints (views, no sync)
    scale_list = scales.to(device) if cfg else None
    cache = StaticKVCache(model, N, max_len=P + S)
    step_fn = _DecodeStep(cache, cuda_graph)
    logits = cache.prefill(ids, attention_mask=mask)[:, -1]  # (N, V)
    out = torch.zeros(B, S, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    forwards, steps = 1, S
    for s in range(S):
        lg = guide(logits, scale_list[s]) if cfg else logits.float()
        tok = sample(lg + table.bias[index[s]], params, generator)  # (B,)
        out[:, s] = tok
        if on_token is not None:
            on_token(s, tok.cpu())
        if table.stop_id is not None:
            done |= tok == table.stop_id
            if (s + 1) % check_every == 0 and bool(done.all()):
                steps = s + 1
                break
        if s == S - 1:
            break
        logits = step_fn(torch.cat([tok, tok])[:, None] if cfg else tok[:, None])[:, -1]
        forwards += 1
    dt = time.perf_counter() - t0
    return out[:, :steps], {"forwards": forwards, "tokens": B * steps, "seconds": dt}


@torch.no_grad()
def decode_naive(model: Transformer, cond: Sequence[Tensor], uncond: Sequence[Tensor] | None, table: StepTable,
                 params: SamplingParams, scales: Tensor | None = None, generator: torch.Generator | None = None,
                 on_token: TokenCallback | None = None) -> tuple[Tensor, dict[str, Any]]:
    """The reference loop: every step runs the whole (left-padded) sequence through the model, once for the
    conditional rows and once more for the unconditional rows. Same sampler and constraints as the others."""
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    S = table.num_steps
    table = table.to(device)
    branches = [left_pad(cond, 0)] + ([left_pad(uncond, 0)] if scales is not None else [])
    branches = [(i.to(device), m.to(device)) for i, m in branches]
    B = len(cond)
    out = torch.zeros(B, S, dtype=torch.long, device=device)
    forwards = 0
    done = torch.zeros(B, dtype=torch.bool, device=device)
    steps = S
    for s in range(S):
        last = []
        for ids, mask in branches:
            seq = torch.cat([ids, out[:, :s]], 1)
            m = torch.cat([mask, torch.ones(B, s, dtype=torch.bool, device=device)], 1)
            pos = (m.long().cumsum(1) - 1).clamp(min=0)
            doc = torch.where(m, 0, -1)  # left padding is its own document: real tokens never see it
            logits, _ = model(seq, position_ids=pos, document_ids=doc)
            last.append(logits[:, -1])
            forwards += 1
        lg = guide(torch.cat(last), scales[s].to(device)) if scales is not None else last[0].float()
        tok = sample(lg + table.step_bias(s), params, generator)
        out[:, s] = tok
        if on_token is not None:
            on_token(s, tok.cpu())
        if table.stop_id is not None:
            done |= tok == table.stop_id
            if bool(done.all()):
                steps = s + 1
                break
    return out[:, :steps], {"forwards": forwards, "tokens": B * steps, "seconds": time.perf_counter() - t0}


# ----- the API -------------------------------------------------------------------------------------------
def generate(
    model: Transformer,
    vocab: Vocabulary,
    prompt: Any,
    produce: str = "image",
    *,
    grid: Sequence[int] | None = None,
    cfg_scale: float | None = None,
    cfg_schedule: str = "constant",
    cfg_interval: Sequence[float] | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    max_new_tokens: int | None = None,
    num_samples: int = 1,
    on_token: TokenCallback | None = None,
    method: str = "cached",
    jacobi_window: int | None = None,
    decode_data: bool = True,
    check_every: int = 16,
    cuda_graph: bool = True,
    until_end: bool = False,
    min_frames: int = 1,
    best_of: int = 1,
    rerank: str = "reverse",
    steps: int | None = None,
    cap_transcripts: bool = True,
    request: GenerationRequest | None = None,
) -> GenerationOutput:
    """Generate a ``produce`` segment ("text" | "image" | "audio" | "video") after each prompt.

    prompt: a str (a text condition), a segment, a Document, a list of segments (one prompt), or a list of
    those (a batch; rows are left-padded, each keeps its own positions). None or "" = no condition.
    grid: (h, w) image, (t, h, w) video, (T,) audio time steps; default :func:`default_grid`.
    cfg_scale / temperature / top_k / top_p / max_new_tokens: None = the modality's default
    (:data:`MODALITY_DEFAULTS`). cfg_scale 1 turns guidance off (no unconditional rows).
    seed: seeds the device generator (same seed, same device and batch -> same tokens).
    on_token(step, ids (rows,)): streaming callback after each step (cached / naive only).
    method: "cached" | "jacobi" | "naive" | "masked" (see the module docstring).
    steps (masked): forwards per image (default 12; fewer when the image has fewer codes).
    jacobi_window: draft tokens verified per forward; None = 16 on a GPU (a forward of 17 tokens costs about
    one of 1 token there), 3 on a CPU (where the forward's cost grows with its tokens).
    until_end (audio): the grid's T is the most frames and the model ends the segment itself (END_AUDIO after
    any frame from ``min_frames`` on), as an autoregressive TTS model does; default: exactly T frames.
    best_of: draw ``best_of * num_samples`` candidates per prompt and keep the ``num_samples`` that the model
    itself scores best (``rerank``: "reverse" = log p(prompt | candidate), "joint" = that + log p(candidate |
    prompt); :mod:`omnitok.generation.rerank`), best first. Every prompt needs a condition. stats then holds
    ``candidate_scores`` (per prompt, per candidate) and ``chosen`` (the kept candidates' indices).
    cap_transcripts (text): text after a prompt that ends with speech gets at most the ids that speech can
    hold (:mod:`omnitok.generation.transcript_cap`, from the clip's duration), each row its own cap.
    request: all of the settings above as one :class:`GenerationRequest` (then pass none of them as keywords).
    """
    if request is not None:
        given = {k: v for k, v in locals().items() if k in GenerationRequest.__dataclass_fields__}
        if GenerationRequest(**given) != GenerationRequest():
            raise ValueError("generate(): pass the settings as request= or as keywords, not both")
        return generate(model, vocab, prompt, **request.kwargs())
    if produce not in MODALITY_DEFAULTS:
        raise ValueError(f"produce: expected one of {sorted(MODALITY_DEFAULTS)}, got {produce!r}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a whole number >= 1, got {num_samples!r}")
    if method in ("jacobi", "masked") and on_token is not None:
        raise ValueError(f"on_token streaming is not available with method={method!r}")
    if method == "masked" and produce != "image":
        raise ValueError(f"method='masked' generates images (its training masks image targets), not {produce!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if best_of < 1:
        raise ValueError(f"best_of must be >= 1, got {best_of}")
    if best_of > 1:
        return _best_of(model, vocab, prompt, produce, best_of, rerank, num_samples, decode_data,
                        dict(grid=grid, cfg_scale=cfg_scale, cfg_schedule=cfg_schedule, cfg_interval=cfg_interval,
                             temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                             max_new_tokens=max_new_tokens, on_token=on_token, method=method,
                             jacobi_window=jacobi_window, check_every=check_every, cuda_graph=cuda_graph,
                             until_end=until_end, min_frames=min_frames, steps=steps,
                             cap_transcripts=cap_transcripts))
    recorded = recorded_defaults(model, produce)
    if grid is None and produce == "audio" and recorded.get("until_end"):
        until_end = True  # the recorded audio length is a cap: the model ends the speech itself
    if grid is None and recorded.get("grid") is not None:
        grid = recorded["grid"]
    cfg_scale = recorded.get("cfg_scale") if cfg_scale is None else cfg_scale
    temperature = recorded.get("temperature") if temperature is None else temperature
    top_k = recorded.get("top_k") if top_k is None else top_k
    top_p = recorded.get("top_p") if top_p is None else top_p
    for name, value in (("cfg_scale", cfg_scale), ("temperature", temperature), ("top_p", top_p),
                        ("top_k", top_k), ("max_new_tokens", max_new_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if max_new_tokens is not None and (int(max_new_tokens) != max_new_tokens or max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    if grid is not None:
        grid = check_grid(vocab, produce, grid, model.config.max_seq_len)
    d = MODALITY_DEFAULTS[produce]
    params = SamplingParams(
        temperature=d["temperature"] if temperature is None else float(temperature),
        top_k=d["top_k"] if top_k is None else int(top_k),
        top_p=d["top_p"] if top_p is None else float(top_p),
    )
    scale = d["cfg_scale"] if cfg_scale is None else float(cfg_scale)
    cfg = scale != 1.0 or cfg_schedule != "constant"
    max_new = max_new_tokens if max_new_tokens is not None else d.get("max_new_tokens")
    if produce != "text":
        budget = max_new if max_new is not None else min(400, model.config.max_seq_len // 2)
        grid = tuple(grid) if grid is not None else default_grid(vocab, produce, budget)
    elif grid is not None:
        raise ValueError("grid: text takes no grid; use max_new_tokens")
    table = step_table(vocab, produce, grid, max_new, until_end=until_end, min_frames=min_frames)
    S = table.num_steps
    if produce != "text" and max_new_tokens is not None and max_new_tokens < S:
        raise ValueError(f"max_new_tokens={max_new_tokens} is too small for a {produce} of grid {grid} "
                         f"({S} ids); raise it or shrink the grid")
    scales = guidance_scales(scale, S, cfg_schedule, cfg_interval) if cfg else None
    device = next(model.parameters()).device
    if jacobi_window is None:
        jacobi_window = 16 if device.type == "cuda" else 3
    prompts = _split_batch(prompt)
    cond, uncond = prepare_prompts(vocab, prompts, produce, grid, num_samples, cfg)
    caps = _transcript_caps(vocab, prompts, num_samples) if produce == "text" and cap_transcripts else None
    if caps is not None and max_new is not None and max(c or max_new for c in caps) < max_new:
        max_new = max(c or max_new for c in caps)  # the longest row's cap: rows stop at their own in _finish
        table = step_table(vocab, produce, grid, max_new)
        S = table.num_steps
        scales = guidance_scales(scale, S, cfg_schedule, cfg_interval) if cfg else None
    need = max(len(c) for c in cond + uncond) + S
    if need > model.config.max_seq_len:
        raise ValueError(f"prompt + {S} new ids = {need} exceeds the model's max_seq_len {model.config.max_seq_len}")
    if model.config.vocab_size < vocab.size:
        raise ValueError(f"the model has {model.config.vocab_size} ids, the vocabulary {vocab.size}")
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) if seed is not None else int.from_bytes(os.urandom(7), "little"))
    was_training = model.training
    model.eval()
    try:
        if method == "naive":
            tokens, stats = decode_naive(model, cond, uncond if cfg else None, table, params, scales, generator,
                                         on_token)
        else:
            ids, mask = left_pad(cond + uncond, vocab.pad_id)
            ids, mask = ids.to(device), mask.to(device)
            if method == "jacobi":
                tokens, stats = decode_jacobi(model, ids, mask, table, params, scales, generator, jacobi_window)
            elif method == "masked":
                tokens, stats = decode_masked(model, ids, mask, table, params, vocab.mask_id,
                                              12 if steps is None else steps, scales, generator)
            else:
                tokens, stats = decode_cached(model, ids, mask, table, params, scales, generator, on_token,
                                              check_every, cuda_graph)
    finally:
        model.train(was_training)
    stats["tokens_per_s"] = stats["tokens"] / max(stats["seconds"], 1e-9)
    return _finish(vocab, produce, cond, tokens.cpu(), table, stats, decode_data, caps)


def _transcript_caps(vocab: Vocabulary, prompts: Sequence[Prompt], num_samples: int) -> list[int | None] | None:
    """Per row: the text-id cap of a prompt that ends with speech (codes filled by prepare_prompts), else None."""
    from omnitok.generation.transcript_cap import transcript_cap

    rate = getattr(vocab.codecs.get("audio"), "frame_rate", None)
    if rate is None:
        return None
    caps = [transcript_cap(_as_segments(p), float(rate)) for p in prompts]
    return [c for c in caps for _ in range(num_samples)] if any(c is not None for c in caps) else None


def _best_of(model: Transformer, vocab: Vocabulary, prompt: Any, produce: str, best_of: int, rerank: str,
             num_samples: int, decode_data: bool, kw: dict[str, Any]) -> GenerationOutput:
    """``best_of * num_samples`` candidates per prompt -> the ``num_samples`` best by the model's own score."""
    from omnitok.generation.rerank import SCORES, candidate_scores, condition_segments

    if rerank not in SCORES:
        raise ValueError(f"rerank: expected one of {SCORES}, got {rerank!r}")
    prompts = _split_batch(prompt)
    segs = [condition_segments(_as_segments(p)) for p in prompts]  # refused before any candidate is drawn
    per = best_of * num_samples
    out = generate(model, vocab, prompts, produce, num_samples=per, decode_data=False, **kw)
    t0 = time.perf_counter()
    scores = candidate_scores(model, vocab, [segs[r // per] for r in range(len(out))], out.outputs, rerank)
    scores = scores.view(len(prompts), per)  # (prompts, candidates)
    chosen = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :num_samples]  # (prompts, num_samples)
    keep = [i * per + int(j) for i in range(len(prompts)) for j in chosen[i]]
    docs, ids = [out.documents[r] for r in keep], [out.ids[r] for r in keep]
    if decode_data and produce in vocab.codecs:
        for d in docs:
            vocab.decode_data(Document([d.segments[-1]]))
    stats = dict(out.stats, best_of=best_of, rerank=rerank, candidates=len(out),
                 candidate_scores=scores.tolist(), chosen=chosen.tolist(),
                 rerank_seconds=time.perf_counter() - t0)
    return GenerationOutput(docs, ids, stats)


def _finish(vocab: Vocabulary, produce: str, cond: Sequence[Tensor], tokens: Tensor, table: StepTable,
            stats: dict[str, Any], decode_data: bool, caps: Sequence[int | None] | None = None) -> GenerationOutput:
    docs, gen = [], []
    for r in range(tokens.shape[0]):
        row = tokens[r]
        if table.stop_id is not None:
            hit = (row == table.stop_id).nonzero()
            row = row[: int(hit[0]) + 1] if len(hit) else torch.cat([row, torch.tensor([table.stop_id])])
            cap = caps[r] if caps is not None else None
            if cap is not None and len(row) > cap:  # a transcript longer than its speech can hold: cut, END
                row = torch.cat([row[: cap - 1], torch.tensor([table.stop_id])])
        doc = vocab.decode(torch.cat([cond[r], row]))
        if decode_data and produce in vocab.codecs:
            vocab.decode_data(Document([doc.segments[-1]]))
        docs.append(doc)
        gen.append(row)
    return GenerationOutput(docs, gen, stats)
