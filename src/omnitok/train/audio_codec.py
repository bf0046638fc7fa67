"""Train an :class:`~omnitok.codecs.audio.AudioCodec` from a ``type: audio`` preset.

Called by ``omnitok train codec --preset speech16k`` (:mod:`omnitok.train.codec`). Preset keys::

    data:      {name: speech | synthetic | /folder/of/wav-or-flac, split: train, limit: N,
                segment_seconds: 0.64}
    model:     AudioCodec arguments (sample_rate, ratios, dim, enc_channels, dec_channels, ...)
    quantizer: {num_codebooks, codebook_size, quantizer_dropout, **ResidualVQ / VectorQuantizer kwargs}
    loss:      {l1, stft, mel, vq, adversarial, feature, adversarial_start, fft_sizes, mel_windows, ctc, ctc_batch}
    train:     {steps, batch_size, lr, warmup, betas, grad_clip, optimizer, muon_momentum, log_every, save_every,
                threads, device, bf16, seed}

``train.device`` is ``auto`` by default (the GPU when there is one). On a GPU with bf16, ``train.bf16`` (default
true) runs the codec's forward under bf16 autocast; the spectral losses and the discriminator (FFTs) stay in
fp32, on the reconstruction cast back to fp32. Training is on random fixed-length segments of the clips held in memory (a clip shorter than a segment is
zero-padded). The loss is ``l1 * |x - x'| + stft * MR-STFT + mel * multi-scale mel + vq * RVQ loss``, plus,
from step ``adversarial_start`` when ``adversarial > 0``, a multi-scale STFT discriminator (hinge) with
feature matching.

``loss.ctc`` (default 0 = off) adds a supervised content loss (:mod:`omnitok.codecs.losses.ctc`): each step also
takes ``loss.ctc_batch`` (default 4) random whole clips with their transcripts, runs encoder -> latent norm ->
quantizer on their frames (no decoder), and adds ``ctc * CTC(characters | CTCHead(quantized latents))``; the
gradient reaches the encoder through the quantizer's straight-through latents. It needs a built dataset with
transcripts (``speech``). The head is trained with the codec (its own AdamW group in the same optimizer), saved
in the training checkpoints as ``ctc_head.*`` and restored by ``--resume``; the codec folder holds only the
codec. At the end, a content probe (greedy CTC decoding of the head on the codes of up to 200 clips of the
dataset's ``val`` split) writes ``cer`` and ``wer`` into the codec folder's config under ``train.ctc_probe``.
Output: ``out_dir/checkpoints/step_N`` (resumable) and ``out_dir/codec`` (the codec folder,
``config.json`` + ``model.safetensors``, with the preset and final training metrics in its config).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from omnitok.codecs.audio import AudioCodec
from omnitok.codecs.builder import build_audio_codec
from omnitok.codecs.losses.spectral import ReconstructionLoss
from omnitok.eval.audio_codec import synthetic_clips
from omnitok.train.muon import codec_optimizer

__all__ = ["ClipSampler", "build_audio_codec", "load_clips", "load_transcribed_clips", "synthetic_clips", "train"]


def load_clips(name: str, split: str, sample_rate: int, limit: int | None = None) -> list[np.ndarray]:
    """Mono float32 clips at ``sample_rate``: a built dataset (``ShardDataset``), a folder of WAV/FLAC, or synthetic."""
    if name == "synthetic":
        return synthetic_clips(limit or 32, sample_rate, seed=0 if split == "train" else 1)
    folder = Path(name).expanduser()
    if folder.is_dir() and not any(folder.glob("*.tar")):
        from omnitok.io.audio import read_audio

        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise ValueError(f"data folder {folder} holds no .wav / .flac files")
        return [read_audio(p, target_sr=sample_rate)[0] for p in files[:limit]]
    return _read_dataset(name, split, sample_rate, limit)[0]


def load_transcribed_clips(name: str, split: str, sample_rate: int,
                           limit: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """The clips of :func:`load_clips` (same order) and their transcripts, from a built dataset only."""
    folder = Path(name).expanduser()
    if name == "synthetic" or (folder.is_dir() and not any(folder.glob("*.tar"))):
        raise ValueError(f"loss.ctc needs a built dataset with transcripts (e.g. data.name=speech); "
                         f"data.name={name!r} is {'synthetic' if name == 'synthetic' else 'a folder of WAV/FLAC'}")
    clips, texts = _read_dataset(name, split, sample_rate, limit)
    if not any(t.strip() for t in texts):
        raise ValueError(f"loss.ctc needs transcripts: dataset {name!r} split {split!r} has none")
    return clips, texts


def _read_dataset(name: str, split: str, sample_rate: int, limit: int | None) -> tuple[list[np.ndarray], list[str]]:
    from omnitok.data.dataset import ShardDataset

    clips, texts = [], []
    for item in ShardDataset(name, split, sample_rate=sample_rate):
        clips.append(item["audio"].reshape(-1).numpy())
        texts.append(str(item.get("caption") or ""))
        if limit and len(clips) >= limit:
            break
    if not clips:
        raise ValueError(f"dataset {name!r} split {split!r} holds no audio")
    return clips, texts


class SegmentSampler:
    """Random fixed-length segments from in-memory clips; its state is the numpy generator state."""

    def __init__(self, clips: list[np.ndarray], segment: int, seed: int) -> None:
        self.clips, self.segment = clips, segment
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int) -> torch.Tensor:
        out = np.zeros((batch_size, 1, self.segment), dtype=np.float32)
        for b in range(batch_size):
            clip = self.clips[int(self.rng.integers(len(self.clips)))]
            if len(clip) > self.segment:
                start = int(self.rng.integers(len(clip) - self.segment + 1))
                out[b, 0] = clip[start : start + self.segment]
            else:
                out[b, 0, : len(clip)] = clip
        return torch.from_numpy(out)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class ClipSampler:
    """Random whole clips with their transcripts for the CTC loss; its state is the numpy generator state.

    Clips whose transcript is empty after normalisation, or too long for the clip's frames, are left out.
    """

    def __init__(self, clips: list[np.ndarray], texts: list[str], hop: int, seed: int) -> None:
        from omnitok.codecs.losses.ctc import frames_needed, normalize_transcript

        keep = [i for i, (c, t) in enumerate(zip(clips, texts, strict=True))
                if normalize_transcript(t) and frames_needed(t) <= math.ceil(len(c) / hop)]
        if not keep:
            raise ValueError("loss.ctc: no clip has a non-empty transcript that fits its frames")
        self.clips, self.texts, self.hop = [clips[i] for i in keep], [texts[i] for i in keep], hop
        self.rng = np.random.default_rng([seed, 1])

    def __len__(self) -> int:
        return len(self.clips)

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """-> audio (B, 1, F_max * hop) zero-padded after each clip, frames (B,) long, transcripts."""
        idx = [int(i) for i in self.rng.integers(len(self.clips), size=batch_size)]
        return pad_clips([self.clips[i] for i in idx], self.hop) + ([self.texts[i] for i in idx],)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def pad_clips(clips: list[np.ndarray], hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips -> (audio (B, 1, F_max * hop) zero-padded after each clip, frames (B,) = ceil(len / hop))."""
    frames = [max(math.ceil(len(c) / hop), 1) for c in clips]
    out = np.zeros((len(clips), 1, max(frames) * hop), dtype=np.float32)
    for b, c in enumerate(clips):
        out[b, 0, : len(c)] = c
    return torch.from_numpy(out), torch.tensor(frames, dtype=torch.long)


def quantized_latents(codec: AudioCodec, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Training-mode encoder -> latent norm -> quantizer on the true frames of a padded batch (B, 1, T) -> (B, D, F).

    The encoder is causal, so padding never reaches a clip's frames; only the true frames go through the latent
    norm's batch statistics and the quantizer (its codebook statistics), and padded frames come back as zeros.
    """
    z = codec.encoder(x)  # (B, D, F)
    valid = torch.arange(z.shape[-1], device=z.device)[None] < frames.to(z.device)[:, None]  # (B, F)
    flat = z.transpose(1, 2)[valid].T[None]  # (1, D, N) the true frames of every clip, in order
    q = codec.quantizer.forward_channel_first(codec._normalize(flat)).latents[0].T  # (N, D), straight-through
    out = z.new_zeros(z.shape[0], z.shape[2], z.shape[1]).to(q.dtype)  # (B, F, D)
    out[valid] = q
    return out.transpose(1, 2)  # (B, D, F)


def ctc_probe(codec: AudioCodec, head: torch.nn.Module, clips: list[np.ndarray], texts: list[str],
              progress: bool = True) -> dict[str, Any]:
    """Greedy CTC decoding of ``head`` on the latents of each clip's codes (what the LM reads) -> cer, wer."""
    from omnitok.codecs.losses.ctc import greedy_decode, normalize_transcript
    from omnitok.eval.wer import corpus_wer, edit_distance

    codes = codec.encode_many([torch.from_numpy(c).view(1, -1) for c in clips], batch_size=8)  # each (F, n_q)
    hyps = []
    with torch.no_grad():
        for c in tqdm(codes, desc="ctc probe", disable=not progress):
            lat = codec.quantizer.codes_to_latents(c[None]).transpose(1, 2)  # (1, D, F)
            hyps.append(greedy_decode(head(lat), torch.tensor([c.shape[0]]))[0])
    refs = [normalize_transcript(t) for t in texts]
    chars = sum(len(r) for r in refs)
    cer = sum(edit_distance(list(r), list(h)) for r, h in zip(refs, hyps, strict=True)) / max(chars, 1)
    return {"clips": len(clips), "cer": round(cer, 4), "wer": round(corpus_wer(zip(refs, hyps, strict=True)), 4)}


def _lr(step: int, base: float, warmup: int, steps: int) -> float:
    """Linear warm-up then cosine to 10% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min((step - warmup) / max(steps - warmup, 1), 1.0)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train(cfg: dict[str, Any], out_dir: Path, resume: bool = False) -> Path:
    """Train from a preset dict; return the codec folder ``out_dir/codec``."""
    from omnitok.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state

    out_dir = Path(out_dir)
    tcfg = dict(cfg.get("train") or {})
    dcfg = dict(cfg.get("data") or {})
    lcfg = dict(cfg.get("loss") or {})
    seed = int(cfg.get("seed", 0))
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    torch.manual_seed(seed)
    random.seed(seed)

    from omnitok.codecs.base import select_device

    device = select_device(tcfg.get("device", "auto"))
    autocast = codec_autocast(device, bool(tcfg.get("bf16", True)))
    codec = build_audio_codec(cfg).to(device)
    sr = codec.sample_rate
    seg = max(round(float(dcfg.get("segment_seconds", 0.64)) * sr / codec.hop), 1) * codec.hop
    data_name, data_split = str(dcfg.get("name", "speech")), str(dcfg.get("split", "train"))
    ctc_weight, ctc_bs = float(lcfg.get("ctc", 0.0)), int(lcfg.get("ctc_batch", 4))
    ctc_head, ctc_sampler = None, None
    if ctc_weight > 0:
        from omnitok.codecs.losses.ctc import CTCHead, ctc_loss, encode_transcripts

        if ctc_bs < 1:
            raise ValueError(f"loss.ctc_batch: expected a positive number of clips, got {ctc_bs}")
        clips, texts = load_transcribed_clips(data_name, data_split, sr, dcfg.get("limit"))
        ctc_sampler = ClipSampler(clips, texts, codec.hop, seed)
        ctc_head = CTCHead(codec.quantizer.dim).to(device)
    else:
        clips = load_clips(data_name, data_split, sr, dcfg.get("limit"))
    sampler = SegmentSampler(clips, seg, seed)
    recon = ReconstructionLoss(sr, l1_weight=float(lcfg.get("l1", 0.1)), stft_weight=float(lcfg.get("stft", 1.0)),
                               mel_weight=float(lcfg.get("mel", 1.0)),
                               fft_sizes=lcfg.get("fft_sizes", (2048, 1024, 512, 256, 128)),
                               mel_windows=lcfg.get("mel_windows", (64, 128, 256, 512, 1024, 2048)),
                               mel_floor=float(lcfg.get("mel_floor", 1e-5)),
                               stft_floor=float(lcfg.get("stft_floor", 1e-5))).to(device)
    vq_weight = float(lcfg.get("vq", 1.0))
    adv_weight, feat_weight = float(lcfg.get("adversarial", 0.0)), float(lcfg.get("feature", 0.0))
    adv_start = int(lcfg.get("adversarial_start", 0))
    disc = None
    if adv_weight > 0 or feat_weight > 0:
        from omnitok.codecs.losses.stft_discriminator import MultiScaleSTFTDiscriminator

        disc = MultiScaleSTFTDiscriminator(lcfg.get("disc_fft_sizes", (1024, 512, 256)),
                                           int(lcfg.get("disc_channels", 16))).to(device)

    steps, bs = int(tcfg.get("steps", 1000)), int(tcfg.get("batch_size", 8))
    lr, warmup = float(tcfg.get("lr", 1e-3)), int(tcfg.get("warmup", 50))
    betas = tuple(tcfg.get("betas", (0.8, 0.99)))
    clip_norm = float(tcfg.get("grad_clip", 1.0))
    opt = codec_optimizer(codec, str(tcfg.get("optimizer", "adamw")), lr, betas,
                          momentum=float(tcfg.get("muon_momentum", 0.95)))
    if ctc_head is not None:  # AdamW rules (also under Muon: muon=False), saved and restored with the codec's
        opt.add_param_group({"params": list(ctc_head.parameters())})
    opt_d = torch.optim.AdamW(disc.parameters(), lr=lr, betas=betas) if disc is not None else None
    start = 0
    ckpt = latest_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        state = load_checkpoint(ckpt)  # tensors on the CPU; load_state_dict copies them to the device
        own = codec.state_dict()
        codec.load_state_dict({k: v for k, v in state["model"].items() if k in own})
        if disc is not None:
            disc.load_state_dict({k[5:]: v for k, v in state["model"].items() if k.startswith("disc.")})
        has_head = any(k.startswith("ctc_head.") for k in state["model"])
        if has_head != (ctc_head is not None):
            raise ValueError(f"--resume: checkpoint {ckpt} was trained with{'out' if not has_head else ''} "
                             f"loss.ctc and this run has it {'on' if ctc_head is not None else 'off'}; "
                             f"resume with the same loss.ctc setting or start a new --out")
        if ctc_head is not None and ctc_sampler is not None:
            ctc_head.load_state_dict({k[9:]: v for k, v in state["model"].items() if k.startswith("ctc_head.")})
            ctc_sampler.load_state_dict(state["loader"]["ctc_sampler"])
        opt.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["loader"]["sampler"])
        set_rng_state(*state["rng"])
        start = state["step"]  # the discriminator's optimizer moments restart (cheap to rebuild)
        print(f"resumed from {ckpt} at step {start}")

    save_every = int(tcfg.get("save_every", 0))
    log_every = max(int(tcfg.get("log_every", 50)), 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "metrics.jsonl"
    print(f"AudioCodec: {sum(p.numel() for p in codec.parameters()) / 1e6:.2f}M params, hop {codec.hop}, "
          f"{codec.frame_rate:g} frames/s, {codec.num_codebooks} x {codec.codebook_size} codes "
          f"-> {codec.bitrate() / 1000:g} kbps at {codec.num_codebooks} codebooks "
          f"({codec.bitrate(1) / 1000:g} kbps per codebook); {len(clips)} clips, segments of {seg} samples; "
          f"on {device}{' (bf16 autocast)' if isinstance(autocast(), torch.autocast) else ''}")
    codec.train()
    t0, last = time.perf_counter(), {}
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="audio codec",
               disable=not tcfg.get("progress", True))
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = _lr(step, lr, warmup, steps)
        x = sampler.batch(bs).to(device, non_blocking=True)  # (B, 1, seg)
        with autocast():
            out = codec(x)
        audio = out.recon.float()  # (B, 1, seg); the FFT losses in fp32
        loss, parts = recon(audio, x)
        loss = loss + vq_weight * out.loss.float()
        if ctc_head is not None and ctc_sampler is not None:
            xc, frames, texts_b = ctc_sampler.batch(ctc_bs)  # (Bc, 1, T), (Bc,)
            targets, target_lengths = encode_transcripts(texts_b)
            with autocast():
                lat = quantized_latents(codec, xc.to(device, non_blocking=True), frames)  # (Bc, D, F)
            ctc = ctc_loss(ctc_head(lat.float()), frames, targets, target_lengths)
            loss = loss + ctc_weight * ctc
            parts["ctc"] = ctc.detach()
        use_adv = disc is not None and step >= adv_start
        if use_adv:
            assert disc is not None and opt_d is not None
            real, fake = disc(x), disc(audio)
            g_adv = _gen_terms(fake, real, adv_weight, feat_weight)
            loss = loss + g_adv
            parts["adv_g"] = g_adv.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(codec.parameters(), clip_norm)
        if ctc_head is not None:
            torch.nn.utils.clip_grad_norm_(ctc_head.parameters(), clip_norm)
        opt.step()
        if use_adv:
            from omnitok.codecs.losses.stft_discriminator import discriminator_loss

            assert disc is not None and opt_d is not None
            d_loss = discriminator_loss(disc(x), disc(audio.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            parts["adv_d"] = d_loss.detach()
        if step % log_every == 0 or step == steps - 1:
            last = {"step": step, "loss": float(loss.detach()), "vq": float(out.loss.detach()), "grad_norm": float(gnorm),
                    "lr": opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 1),
                    **{k: float(v) for k, v in parts.items()},
                    **{k: float(v) for k, v in out.metrics.items() if "/" not in k}}
            with log_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
            bar.set_postfix(loss=f"{last['loss']:.3f}", mel=f"{last['mel']:.3f}", usage=f"{last.get('usage', 0):.2f}",
                            **({"ctc": f"{last['ctc']:.3f}"} if "ctc" in last else {}))
        if save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            _save(out_dir, step + 1, codec, disc, opt, sampler, cfg, save_checkpoint, ctc_head, ctc_sampler)
    bar.close()
    _save(out_dir, steps, codec, disc, opt, sampler, cfg, save_checkpoint, ctc_head, ctc_sampler)
    final = out_dir / "codec"
    codec.eval().cpu()
    train_info: dict[str, Any] = {
        "steps": steps, "final": last, "train_seconds": round(time.perf_counter() - t0, 1),
        "bitrate_bps": {str(n): codec.bitrate(n) for n in range(1, codec.num_codebooks + 1)}}
    if ctc_head is not None:
        probe = _ctc_val_probe(codec, ctc_head.eval().cpu(), data_name, sr, bool(tcfg.get("progress", True)))
        if probe is not None:
            train_info["ctc_probe"] = probe
    codec.save_pretrained(final, extra={"preset": cfg, "train": train_info})
    return final


def _ctc_val_probe(codec: AudioCodec, head: torch.nn.Module, name: str, sample_rate: int,
                   progress: bool) -> dict[str, Any] | None:
    """:func:`ctc_probe` on up to 200 clips of ``name``'s ``val`` split; None (with a line) when it has none."""
    try:
        clips, texts = _read_dataset(name, "val", sample_rate, 200)
    except ValueError as e:
        print(f"ctc probe: skipped, no val split to read ({e})")
        return None
    probe = {"split": "val", **ctc_probe(codec, head, clips, texts, progress)}
    print(f"ctc probe on {probe['clips']} val clips (greedy CTC from the codes): CER {probe['cer']:.3f}, "
          f"WER {probe['wer']:.3f}")
    return probe


def codec_autocast(device: torch.device, bf16: bool) -> Callable[[], AbstractContextManager]:
    """A zero-argument factory of the forward's precision context: bf16 autocast on a GPU that has bf16 (when
    ``bf16``), else fp32 (``nullcontext``). CPUs stay in fp32: oneDNN's bf16 convolutions are slower there."""
    if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def _gen_terms(fake: list, real: list, adv_weight: float, feat_weight: float) -> torch.Tensor:
    from omnitok.codecs.losses.stft_discriminator import feature_matching_loss, generator_loss

    return adv_weight * generator_loss(fake) + feat_weight * feature_matching_loss(real, fake)


def _save(out_dir: Path, step: int, codec: AudioCodec, disc: torch.nn.Module | None, opt: torch.optim.Optimizer,
          sampler: SegmentSampler, cfg: dict[str, Any], save_checkpoint: Any, ctc_head: torch.nn.Module | None = None,
          ctc_sampler: ClipSampler | None = None) -> None:
    state = dict(codec.state_dict())
    if disc is not None:
        state.update({f"disc.{k}": v for k, v in disc.state_dict().items()})
    loader: dict[str, Any] = {"sampler": sampler.state_dict()}
    if ctc_head is not None and ctc_sampler is not None:
        state.update({f"ctc_head.{k}": v for k, v in ctc_head.state_dict().items()})
        loader["ctc_sampler"] = ctc_sampler.state_dict()
    save_checkpoint(out_dir, step, codec, opt, cfg, loader,
                    extra={"model_class": "AudioCodec"}, model_state=state)
