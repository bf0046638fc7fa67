"""AudioCodec: a causal SEANet encoder, residual VQ and a SEANet decoder (SoundStream / EnCodec style).

Waveform (B, 1, T) at ``sample_rate`` -> codes (B, frames, n_q) with frames = ceil(T / hop) -> waveform
(B, 1, frames * hop). Defaults: 16 kHz mono, hop 320 (50 frames/s), residual VQ with 8 codebooks of
1024 trained with quantizer dropout (SoundStream, arXiv 2107.03312 sec. 3.3), so one model serves any
1..8 codebooks: ``encode(x, n_q=4)`` keeps the first four residual stages (2 kbps at 50 Hz * 10 bits).

Input conversions (documented, never a crash inside a convolution):

* stereo / multi-channel (B, C, T) -> mean over channels (a warning is issued);
* ``sample_rate=`` different from the codec's -> band-limited resampling with a warning;
* T not a multiple of the hop -> zero-padded on the right to whole frames (decode returns frames*hop);
* empty audio, NaN / inf samples, a non-tensor, a wrong rank -> ``ValueError`` naming the problem;
* files (:meth:`AudioCodec.encode_file`): undecodable / truncated FLAC or WAV -> ``ValueError``.

Chunked (streaming) encoding is exact: every convolution is causal and nothing normalises over time,
so frame f depends only on samples [(f + 1) * hop - R, (f + 1) * hop) with R the encoder's receptive
field. :meth:`encode_chunked` encodes each chunk (a whole number of frames) together with
``context_frames = ceil((R - hop) / hop)`` frames of history and drops the history's frames; the first
chunk's history is the same zero padding the whole-signal pass sees. :meth:`encode_stream` does the same
for pieces of any length. The encoder runs in float64 at inference (:meth:`encode_latents` says why), so the
codes are bit-for-bit those of :meth:`encode` on the whole signal (tests/codecs/test_audio.py checks it at
several chunk sizes and batch sizes, and that dropping the context breaks it).

Decoders: ``decoder="waveform"`` is the SEANet mirror of the encoder (transposed convolutions up to the
sample rate); ``decoder="istft"`` upsamples to ``sample_rate / istft_hop`` and predicts a spectrum that
``torch.istft`` turns into samples (iSTFTNet / Vocos), which learns faster on a small compute budget.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from omnitok.codecs.base import CodecOutput, QuantizedCodec, quantizer_preset
from omnitok.io.audio import read_audio, resample
from omnitok.nn.seanet import SEANetDecoder, SEANetEncoder, SEANetISTFTDecoder
from omnitok.quantizers.base import Quantizer, QuantizerOutput
from omnitok.quantizers.registry import build_quantizer

__all__ = ["AudioCodec", "CodecOutput"]


class AudioCodec(QuantizedCodec):
    """Neural audio codec: causal SEANet + residual VQ. Constructor args are stored in ``config``.

    Args:
        sample_rate: the rate the model works at (Hz).
        ratios: encoder strides, high rate first; hop = prod(ratios).
        dim: latent dimension fed to the quantizer.
        enc_channels / dec_channels: widths of the highest-rate stage (doubling per stage).
        n_residual: residual units per stage (dilations 1, 3, 9).
        bottleneck_residual: extra residual units at the frame rate in the encoder and decoder.
        activation: "elu" or "snake".
        codebook_size / num_codebooks: the residual VQ (K codes, n_q stages).
        quantizer_dropout: probability of training with a random 1..n_q prefix of the stages.
        quantizer_kwargs: extra keyword arguments of the residual VQ (EMA decay, k-means init, ...).
        quantizer: a residual VQ built by ``build_quantizer("rvq", dim=..., codebook_size=..., num_quantizers=...,
            quantizer_dropout=..., ...)`` instead of the four arguments above (which config.json records and
            ``from_pretrained`` reads back). Without it the codec builds that RVQ itself, through the same
            registry, after its convolutions (so a seeded codec keeps the weights it always had).
    """

    modality = "audio"
    #: dtype of the encoder at inference. float64 (the default) makes codes independent of how a signal is
    #: chunked or batched; float32 is ~1.35x faster on CPU and equal in practice (the quickstart's tokenisation
    #: sets it: 0 of 12,668 codes differed on 200 clips encoded one at a time; batched by encode_many, 1 of 436,005)
    encode_dtype: torch.dtype = torch.float64

    def __init__(
        self,
        sample_rate: int = 16000,
        ratios: Sequence[int] = (2, 4, 5, 8),
        dim: int = 64,
        enc_channels: int = 16,
        dec_channels: int = 16,
        n_residual: int = 1,
        bottleneck_residual: int = 0,
        activation: str = "elu",
        codebook_size: int = 1024,
        num_codebooks: int = 8,
        quantizer_dropout: float = 1.0,
        quantizer_kwargs: dict[str, Any] | None = None,
        latent_norm: bool = True,
        decoder: str = "waveform",
        istft_ratios: Sequence[int] = (4,),
        istft_channels: int = 256,
        quantizer: Quantizer | None = None,
    ) -> None:
        super().__init__()
        if quantizer is not None:  # its arguments are the ones config.json records
            name, kw = quantizer_preset(quantizer, "AudioCodec")
            if name != "rvq" or int(kw.pop("dim", -1)) != int(dim):
                raise ValueError(f"AudioCodec: quantizer must be a residual VQ (rvq) of dim {dim}, got {name} "
                                 f"of dim {quantizer.dim}")
            codebook_size, num_codebooks = kw.pop("codebook_size"), kw.pop("num_quantizers")
            quantizer_dropout, quantizer_kwargs = kw.pop("quantizer_dropout", 0.0), kw
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not ratios or any(int(r) < 1 for r in ratios):
            raise ValueError(f"ratios must be positive strides, got {ratios}")
        self.config = {
            "sample_rate": int(sample_rate),
            "ratios": [int(r) for r in ratios],
            "dim": int(dim),
            "enc_channels": int(enc_channels),
            "dec_channels": int(dec_channels),
            "n_residual": int(n_residual),
            "bottleneck_residual": int(bottleneck_residual),
            "activation": activation,
            "codebook_size": int(codebook_size),
            "num_codebooks": int(num_codebooks),
            "quantizer_dropout": float(quantizer_dropout),
            "quantizer_kwargs": dict(quantizer_kwargs or {}),
            "latent_norm": bool(latent_norm),
            "decoder": decoder,
            "istft_ratios": [int(r) for r in istft_ratios],
            "istft_channels": int(istft_channels),
        }
        self.sample_rate = int(sample_rate)
        self.hop = math.prod(int(r) for r in ratios)
        self.encoder = SEANetEncoder(dim, enc_channels, ratios, n_residual, bottleneck_residual,
                                     activation=activation)
        if decoder == "waveform":
            self.decoder: nn.Module = SEANetDecoder(dim, dec_channels, list(reversed(ratios)), n_residual,
                                                    bottleneck_residual, activation=activation)
        elif decoder == "istft":
            up = math.prod(int(r) for r in istft_ratios)
            if self.hop % up:
                raise ValueError(f"istft_ratios {istft_ratios} must divide the hop {self.hop}")
            self.decoder = SEANetISTFTDecoder(dim, istft_channels, istft_ratios, self.hop // up, n_residual + 2,
                                              bottleneck_residual, activation=activation)
        else:
            raise ValueError(f"decoder must be 'waveform' or 'istft', got {decoder!r}")
        # Per-channel standardisation of the latents before the quantizer (BatchNorm without affine):
        # early in training the encoder output is a large constant offset plus a small, drifting spread,
        # and the codebooks collapse onto a handful of codes; standardising keeps the spread at ~1.
        # At inference it is a fixed per-channel affine map, so it stays causal and chunk-exact.
        self.latent_norm = nn.BatchNorm1d(dim, affine=False, momentum=0.05) if latent_norm else None
        self.quantizer = quantizer if quantizer is not None else build_quantizer(
            "rvq", dim=dim, codebook_size=codebook_size, num_quantizers=num_codebooks,
            quantizer_dropout=quantizer_dropout, **(quantizer_kwargs or {}))
        #: frames of history that make a chunk's codes exact (see the module docstring)
        self.context_frames = max(math.ceil((self.encoder.receptive_field - self.hop) / self.hop), 0)

    # ----- sizes (codebook_size, num_codebooks: the residual VQ's) -----------------------------------
    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second at ``n_q`` codebooks: n_q * log2(K) * frame_rate."""
        n_q = self._check_n_q(n_q)
        return n_q * math.log2(self.codebook_size) * self.frame_rate

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(1, T) or (T,) -> (frames,) with frames = ceil(T / hop)."""
        if not input_shape:
            raise ValueError("input_shape must end with the number of samples T")
        return (math.ceil(int(input_shape[-1]) / self.hop),)

    # ----- input handling ----------------------------------------------------------------------------
    def prepare(self, x: Tensor, sample_rate: int | None = None) -> Tensor:
        """Validate and convert a waveform batch to (B, 1, frames * hop) float32 at ``self.sample_rate``."""
        if not isinstance(x, Tensor):
            raise ValueError(f"AudioCodec: audio must be a torch.Tensor (B, 1, T), got {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(
                f"AudioCodec: audio must be shaped (B, channels, T), got shape {tuple(x.shape)}; "
                "use x.view(1, 1, -1) for a single mono clip"
            )
        if not x.is_floating_point():
            raise ValueError(f"AudioCodec: audio must be floating point in [-1, 1], got dtype {x.dtype}")
        if x.shape[0] == 0 or x.shape[-1] == 0:
            raise ValueError(f"AudioCodec: empty audio (shape {tuple(x.shape)}); need at least one sample")
        if x.shape[1] == 0:
            raise ValueError(f"AudioCodec: audio has 0 channels (shape {tuple(x.shape)})")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"AudioCodec: audio contains {bad} NaN/inf samples; clean or drop them first")
        x = x.float()
        if x.shape[1] > 1:
            warnings.warn(f"AudioCodec: downmixing {x.shape[1]} channels to mono (channel mean)", stacklevel=3)
            x = x.mean(dim=1, keepdim=True)
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            if int(sample_rate) <= 0:
                raise ValueError(f"AudioCodec: sample_rate must be positive, got {sample_rate}")
            warnings.warn(
                f"AudioCodec: resampling from {sample_rate} Hz to the codec's {self.sample_rate} Hz", stacklevel=3
            )
            x = resample_batch(x, int(sample_rate), self.sample_rate)
        pad = (-x.shape[-1]) % self.hop
        if pad:
            x = torch.nn.functional.pad(x, (0, pad))
        return x

    def _check_n_q(self, n_q: int | None) -> int:
        if n_q is None:
            return self.num_codebooks
        if not isinstance(n_q, int) or not 1 <= n_q <= self.num_codebooks:
            raise ValueError(f"AudioCodec: n_q must be an int in [1, {self.num_codebooks}], got {n_q!r}")
        return n_q

    # ----- encode / decode ---------------------------------------------------------------------------
    def forward(self, x: Tensor) -> CodecOutput:
        """Training pass on a prepared batch (B, 1, T), T a multiple of the hop -> recon (B, 1, T)."""
        z = self._normalize(self.encoder(x))  # (B, D, F)
        q: QuantizerOutput = self.quantizer.forward_channel_first(z)  # latents (B, D, F), codes (B, F, n_q)
        y = self.decoder(q.latents)  # (B, 1, F * hop)
        return CodecOutput(y, q.codes, q.loss, q.metrics)

    def _normalize(self, z: Tensor) -> Tensor:
        """Training-mode latent standardisation (batch statistics); identity without latent_norm."""
        return self.latent_norm(z) if self.latent_norm is not None else z

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None, sample_rate: int | None = None) -> Tensor:
        """x (B, 1, T) -> codes (B, ceil(T / hop), n_q) int64. See the module docstring for conversions."""
        n_q = self._check_n_q(n_q)
        x = self.prepare(x, sample_rate)
        return self._encode_prepared(x, n_q)

    def _encode_prepared(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """Prepared (B, 1, F * hop) -> codes (B, F, n_q); the encoder runs in ``encode_dtype`` (see encode_latents)."""
        z = self.encode_latents(x)  # (B, D, F) float32
        was_training = self.quantizer.training
        self.quantizer.eval()  # no dropout, no codebook updates
        try:
            codes = self.quantizer(z.movedim(1, -1), n_q=n_q).codes  # (B, F, n_q)
        finally:
            self.quantizer.train(was_training)
        return codes

    def encode_latents(self, x: Tensor) -> Tensor:
        """Prepared (B, 1, F * hop) -> continuous latents (B, D, F), computed in ``encode_dtype`` (float64 unless set), returned as float32.

        Why float64: CPU float32 convolution kernels (oneDNN, BLAS) pick their blocking from the input
        length and batch size, so the same frame computed inside a long and a short input can differ in
        the last bit (about 1e-7), which can flip a code at a near tie. Summing in float64 and rounding to
        float32 makes the frame values independent of the chunking in practice (a difference would need a
        float64 rounding error to straddle a float32 rounding boundary: about 1e-8 per value). It costs
        about 1.35x encoder time on CPU; training stays float32. ``encode_dtype = torch.float32`` trades
        that guarantee for speed.
        """
        dt = self.encode_dtype
        if dt not in (torch.float32, torch.float64):
            raise ValueError(f"encode_dtype must be torch.float32 or torch.float64, got {dt}")
        params = {k: v.to(dt) for k, v in self.encoder.named_parameters()}
        params.update({k: v.to(dt) for k, v in self.encoder.named_buffers()})
        z = torch.func.functional_call(self.encoder, params, (x.to(dt),))  # (B, D, F)
        if self.latent_norm is not None:  # inference: the running statistics, a fixed affine map
            ln = self.latent_norm
            mean = ln.running_mean.to(dt)[:, None]  # type: ignore[index]
            std = (ln.running_var.to(dt) + ln.eps).sqrt()[:, None]  # type: ignore[operator]
            z = (z - mean) / std
        return z.float()

    @torch.no_grad()
    def encode_many(self, clips: Sequence[Tensor], n_q: int | None = None, sample_rate: int | None = None,
                    batch_size: int = 8) -> list[Tensor]:
        """Clips of any lengths, each (C, T) -> their codes, each (ceil(T / hop), n_q): equal to ``encode`` of each
        clip alone, in batches.

        Clips are sorted by length and each batch is right-padded with zeros to its longest clip; the encoder is
        causal, so a clip's frames never see the padding after it (the same argument as :meth:`encode_chunked`).
        Bit for bit with the float64 encoder (the default); with ``encode_dtype = torch.float32`` the batch
        shape can flip a code at a near tie (1 of the quickstart's 436,005 training speech codes). On a 2-core CPU the
        quickstart's 7,190 training clips encode in 73 s instead of 132 s one at a time (docs/experiments.md, run H).
        """
        if batch_size < 1:
            raise ValueError(f"encode_many: batch_size must be >= 1, got {batch_size}")
        n_q = self._check_n_q(n_q)
        prepared = []
        for i, clip in enumerate(clips):
            if not isinstance(clip, Tensor) or clip.dim() != 2:
                shape = tuple(clip.shape) if isinstance(clip, Tensor) else type(clip).__name__
                raise ValueError(f"AudioCodec.encode_many: clip {i} must be a (channels, T) tensor, got {shape}")
            prepared.append(self.prepare(clip[None], sample_rate)[0])  # (1, F_i * hop)
        out: list[Tensor | None] = [None] * len(prepared)
        order = sorted(range(len(prepared)), key=lambda i: prepared[i].shape[-1])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            longest = prepared[idx[-1]].shape[-1]
            x = prepared[idx[0]].new_zeros(len(idx), 1, longest)  # (b, 1, longest)
            for row, i in enumerate(idx):
                x[row, :, : prepared[i].shape[-1]] = prepared[i]
            codes = self._encode_prepared(x, n_q)  # (b, longest / hop, n_q)
            for row, i in enumerate(idx):
                out[i] = codes[row, : prepared[i].shape[-1] // self.hop]
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def encode_chunked(self, x: Tensor, chunk_frames: int, n_q: int | None = None,
                       sample_rate: int | None = None) -> Tensor:
        """Encode in chunks of ``chunk_frames`` frames with left context; equals :meth:`encode` bit for bit."""
        if int(chunk_frames) < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        n_q = self._check_n_q(n_q)
        x = self.prepare(x, sample_rate)
        return torch.cat(list(self._chunks(x, int(chunk_frames), n_q)), dim=1)

    def _chunks(self, x: Tensor, chunk_frames: int, n_q: int) -> Iterator[Tensor]:
        frames = x.shape[-1] // self.hop
        for start in range(0, frames, chunk_frames):
            stop = min(start + chunk_frames, frames)
            ctx = min(self.context_frames, start)
            piece = x[..., (start - ctx) * self.hop : stop * self.hop]
            yield self._encode_prepared(piece, n_q)[:, ctx:]

    @torch.no_grad()
    def encode_stream(self, chunks: Iterable[Tensor], n_q: int | None = None) -> Iterator[Tensor]:
        """Streaming encode: feed (B, 1, t) pieces of any length, get (B, f, n_q) codes as frames complete.

        Keeps ``context_frames * hop`` samples of history; a final partial frame is zero-padded when the
        stream ends. Concatenated, the outputs equal :meth:`encode` of the concatenated input.
        """
        n_q = self._check_n_q(n_q)
        history: Tensor | None = None  # (B, 1, <= context_frames * hop) already-encoded samples
        pending: Tensor | None = None  # (B, 1, < hop) samples of an incomplete frame
        for piece in chunks:
            if not isinstance(piece, Tensor) or piece.dim() != 3 or piece.shape[1] != 1:
                raise ValueError(f"encode_stream: each chunk must be a (B, 1, t) tensor, got {getattr(piece, 'shape', piece)}")
            if not torch.isfinite(piece).all():
                raise ValueError("encode_stream: chunk contains NaN/inf samples")
            buf = piece.float() if pending is None else torch.cat([pending, piece.float()], dim=-1)
            whole = buf.shape[-1] // self.hop * self.hop
            pending = buf[..., whole:]
            if whole == 0:
                continue
            new = buf[..., :whole]
            ctx = 0 if history is None else history.shape[-1] // self.hop
            full = new if history is None else torch.cat([history, new], dim=-1)
            yield self._encode_prepared(full, n_q)[:, ctx:]
            history = full[..., max(full.shape[-1] - self.context_frames * self.hop, 0):]
        if pending is not None and pending.shape[-1] > 0:
            pad = self.hop - pending.shape[-1]
            new = torch.nn.functional.pad(pending, (0, pad))
            ctx = 0 if history is None else history.shape[-1] // self.hop
            full = new if history is None else torch.cat([history, new], dim=-1)
            yield self._encode_prepared(full, n_q)[:, ctx:]

    def codes_to_latents(self, codes: Tensor) -> Tensor:
        """codes (B, F, n) with 1 <= n <= num_codebooks -> latents (B, D, F) (sum of the first n stages)."""
        if not isinstance(codes, Tensor) or codes.dim() != 3:
            raise ValueError(f"AudioCodec: codes must be shaped (B, frames, n_q), got {getattr(codes, 'shape', codes)}")
        self._check_n_q(int(codes.shape[-1]))
        return self.quantizer.codes_to_latents(codes).movedim(-1, 1)  # (B, F, D) -> (B, D, F)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, frames, n_q) -> waveform (B, 1, frames * hop) in [-1, 1] (clamped)."""
        if codes.shape[1] == 0:
            raise ValueError("AudioCodec: cannot decode 0 frames")
        return self.decoder(self.codes_to_latents(codes)).clamp(-1.0, 1.0)

    # ----- files ---------------------------------------------------------------------------------------
    def load_audio(self, path: str | Path) -> Tensor:
        """Read a WAV / FLAC file as (1, 1, T) at the codec's rate (stereo downmixed, resampled).

        Truncated or undecodable files raise ``ValueError`` naming the path.
        """
        audio, sr = read_audio(path)
        if sr != self.sample_rate:
            warnings.warn(f"{path}: resampling from {sr} Hz to {self.sample_rate} Hz", stacklevel=2)
        x = torch.from_numpy(audio).view(1, 1, -1)
        return resample_batch(x, sr, self.sample_rate) if sr != self.sample_rate else x

    def encode_file(self, path: str | Path, n_q: int | None = None) -> Tensor:
        """A WAV / FLAC file -> codes (1, frames, n_q)."""
        return self.encode(self.load_audio(path), n_q=n_q)


def resample_batch(x: Tensor, orig_sr: int, target_sr: int) -> Tensor:
    """(B, 1, T) float -> (B, 1, ceil(T * target / orig)) with the band-limited resampler of omnitok.io.audio."""
    out = [resample(row[0].detach().cpu().numpy(), orig_sr, target_sr) for row in x]
    return torch.from_numpy(np.stack(out)).unsqueeze(1).to(x.device)
