"""SEANet encoder / decoder for waveforms: causal strided 1-D convolutions and residual units.

After SEANet (Tagliasacchi et al., 2020, arXiv 2009.02095) as used by SoundStream (arXiv 2107.03312)
and EnCodec (arXiv 2210.13438); Snake activation from BigVGAN / DAC (arXiv 2206.04658, 2306.06546).

Every convolution is *causal*: it pads ``(k - 1) * dilation - (stride - 1)`` zeros on the left only,
so output frame ``t`` depends on input samples ``<= (t + 1) * stride - 1`` and a strided conv maps
``T`` samples to ``T / stride`` frames when ``stride`` divides ``T``. Nothing normalises over time
(weight norm only), so a frame's value depends on a bounded window of past samples:
:attr:`SEANetEncoder.receptive_field`. That is what makes chunked encoding exact — see
:meth:`omnitok.codecs.audio.AudioCodec.encode_chunked`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "CausalConv1d",
    "CausalConvTranspose1d",
    "ResidualUnit",
    "SEANetDecoder",
    "SEANetEncoder",
    "SEANetISTFTDecoder",
    "Snake",
    "make_activation",
]


class Snake(nn.Module):
    """Snake activation x + sin^2(a x) / a with a learned per-channel a (Ziyin et al., 2020, arXiv 2006.08195)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        a = self.alpha
        return x + (a * x).sin().pow(2) / (a + 1e-9)


def make_activation(name: str, channels: int) -> nn.Module:
    if name == "elu":
        return nn.ELU()
    if name == "snake":
        return Snake(channels)
    raise ValueError(f"activation must be 'elu' or 'snake', got {name!r}")


class CausalConv1d(nn.Module):
    """Conv1d with left-only padding ``(k-1)*d - (s-1)``: T samples -> ceil(T / s) frames, causal."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation))
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.left_pad = (kernel - 1) * dilation - (stride - 1)
        if self.left_pad < 0:
            raise ValueError(f"kernel {kernel} with dilation {dilation} is too short for stride {stride}")

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, T) -> (B, Cout, ceil(T / s))
        extra = (-x.shape[-1]) % self.stride  # right-pad to a whole frame (never needed when s | T)
        return self.conv(nn.functional.pad(x, (self.left_pad, extra)))


class CausalConvTranspose1d(nn.Module):
    """ConvTranspose1d that keeps the first ``T * s`` outputs (drops the right overhang): causal."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(cin, cout, kernel, stride=stride))
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, T) -> (B, Cout, T * s)
        return self.conv(x)[..., : x.shape[-1] * self.stride]


class ResidualUnit(nn.Module):
    """act -> causal conv k (dilated) to C/2 -> act -> 1x1 conv back to C, plus the input (SEANet)."""

    def __init__(self, channels: int, dilation: int, kernel: int = 3, activation: str = "elu") -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.block = nn.Sequential(
            make_activation(activation, channels),
            CausalConv1d(channels, hidden, kernel, dilation=dilation),
            make_activation(activation, hidden),
            CausalConv1d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        return x + self.block(x)


def _res_stack(channels: int, n_residual: int, activation: str, dilation_base: int = 3) -> list[nn.Module]:
    return [ResidualUnit(channels, dilation_base**j, activation=activation) for j in range(n_residual)]


def _up_stages(c: int, widths: Sequence[int], ratios: Sequence[int], n_residual: int,
               activation: str) -> tuple[list[nn.Module], int]:
    """The decoders' upsampling stages from ``c`` channels -> (layers, the width they end at): per stride r,
    activation, transposed conv (kernel 2r) to the stage's width, residual units."""
    layers: list[nn.Module] = []
    for r, nxt in zip(ratios, widths, strict=True):
        layers += [make_activation(activation, c), CausalConvTranspose1d(c, nxt, 2 * r, stride=r)]
        layers += _res_stack(nxt, n_residual, activation)
        c = nxt
    return layers, c


class _SEANetStack(nn.Module, ABC):
    """What the SEANet encoder and decoder share: their arguments, ``hop`` = prod(ratios) and one ``net`` of causal
    layers (:meth:`layers`). ``ratios`` left out: the class's ``default_ratios``."""

    default_ratios: tuple[int, ...]

    def __init__(
        self,
        dim: int = 64,
        channels: int = 16,
        ratios: Sequence[int] | None = None,
        n_residual: int = 1,
        bottleneck_residual: int = 0,
        audio_channels: int = 1,
        kernel: int = 7,
        activation: str = "elu",
        max_channels: int = 512,
    ) -> None:
        super().__init__()
        self.ratios = tuple(int(r) for r in (self.default_ratios if ratios is None else ratios))
        self.hop = math.prod(self.ratios)
        self.net = nn.Sequential(*self.layers(dim, channels, n_residual, bottleneck_residual, audio_channels, kernel,
                                              activation, max_channels))

    @abstractmethod
    def layers(self, dim: int, channels: int, n_residual: int, bottleneck_residual: int, audio_channels: int,
               kernel: int, activation: str, max_channels: int) -> list[nn.Module]:
        """The layers of ``net``, in order (``self.ratios`` is set)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SEANetEncoder(_SEANetStack):
    """Waveform (B, C_audio, T) -> latents (B, dim, T / hop), hop = prod(ratios).

    channels: width after the stem; it doubles at each downsampling stage.
    ratios: downsampling strides, applied in order (high rate first), e.g. (2, 4, 5, 8) (the default) -> hop 320.
    n_residual: residual units per stage (dilations 1, 3, 9, ...).
    bottleneck_residual: extra residual units at the frame rate (cheap context, dilations 1, 3, ...).
    """

    default_ratios = (2, 4, 5, 8)

    def layers(self, dim: int, channels: int, n_residual: int, bottleneck_residual: int, audio_channels: int,
               kernel: int, activation: str, max_channels: int) -> list[nn.Module]:
        layers: list[nn.Module] = [CausalConv1d(audio_channels, channels, kernel)]
        c = channels
        for r in self.ratios:
            nxt = min(c * 2, max_channels)
            layers += _res_stack(c, n_residual, activation)
            layers += [make_activation(activation, c), CausalConv1d(c, nxt, 2 * r, stride=r)]
            c = nxt
        layers += _res_stack(c, bottleneck_residual, activation)
        return layers + [make_activation(activation, c), CausalConv1d(c, dim, 3)]

    @property
    def receptive_field(self) -> int:
        """Input samples one output frame depends on (a bound: :func:`receptive_field`)."""
        return receptive_field(self.net)


class SEANetDecoder(_SEANetStack):
    """Latents (B, dim, F) -> waveform (B, C_audio, F * hop); the mirror of :class:`SEANetEncoder`.

    channels: width of the last (highest-rate) stage; the first stage has channels * 2**len(ratios).
    ratios: upsampling strides in order (low rate first), e.g. (8, 5, 4, 2) (the default).
    """

    default_ratios = (8, 5, 4, 2)

    def layers(self, dim: int, channels: int, n_residual: int, bottleneck_residual: int, audio_channels: int,
               kernel: int, activation: str, max_channels: int) -> list[nn.Module]:
        n = len(self.ratios)
        c = min(channels * 2**n, max_channels)
        widths = [min(channels * 2 ** (n - i - 1), max_channels) for i in range(n)]  # halving down to channels
        layers: list[nn.Module] = [CausalConv1d(dim, c, kernel), *_res_stack(c, bottleneck_residual, activation)]
        up, c = _up_stages(c, widths, self.ratios, n_residual, activation)
        return layers + up + [make_activation(activation, c), CausalConv1d(c, audio_channels, kernel)]


def receptive_field(module: nn.Module) -> int:
    """Input samples one output frame of a stack of causal convs depends on (an upper bound).

    Walks the convolutions in order: each adds ``(k - 1) * d`` steps of its input rate.
    Residual branches are in parallel with identity, so summing every conv over-counts: still a bound.
    """
    rf, jump = 1, 1
    for m in module.modules():
        if isinstance(m, CausalConv1d):
            rf += (m.kernel - 1) * m.dilation * jump
            jump *= m.stride
    return rf


class SEANetISTFTDecoder(nn.Module):
    """Latents (B, dim, F) -> waveform (B, 1, F * hop) with an inverse-STFT output head (iSTFTNet / Vocos).

    The SEANet trunk upsamples by ``ratios`` (transposed convs + residual units) to the rate
    ``sample_rate / istft_hop``; a 1x1 conv then predicts a log magnitude and a phase per frequency
    bin, and ``torch.istft`` (Hann window, ``n_fft = 4 * istft_hop``) makes the waveform. Predicting
    spectra instead of samples learns much faster under spectral losses and skips the costly
    high-rate layers (iSTFTNet, Kaneko et al. 2022, arXiv 2203.02395; Vocos, Siuzdak 2023,
    arXiv 2306.00814). The trunk is causal; the overlap-add of the last frames is not (the decoder
    does not need to be: chunked *encoding* is what must be exact).
    """

    def __init__(
        self,
        dim: int = 64,
        channels: int = 256,
        ratios: Sequence[int] = (4,),
        istft_hop: int = 80,
        n_residual: int = 3,
        bottleneck_residual: int = 0,
        kernel: int = 7,
        activation: str = "elu",
    ) -> None:
        super().__init__()
        self.ratios = tuple(int(r) for r in ratios)
        self.istft_hop = int(istft_hop)
        self.n_fft = 4 * self.istft_hop
        self.hop = math.prod(self.ratios) * self.istft_hop
        widths = [max(channels // 2 ** (i + 1), 32) for i in range(len(self.ratios))]  # halving, at least 32
        layers: list[nn.Module] = [CausalConv1d(dim, channels, kernel), *_res_stack(channels, bottleneck_residual,
                                                                                    activation)]
        up, c = _up_stages(channels, widths, self.ratios, n_residual, activation)
        self.net = nn.Sequential(*layers, *up, make_activation(activation, c))
        self.bins = self.n_fft // 2 + 1
        self.head = CausalConv1d(c, 2 * self.bins, 3)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, z: Tensor) -> Tensor:  # (B, dim, F) -> (B, 1, F * hop)
        h = self.head(self.net(z))  # (B, 2 * bins, N), N = F * prod(ratios)
        logmag, phase = h.float().chunk(2, dim=1)  # (B, bins, N) each
        mag = torch.exp(logmag.clamp(max=8.0))
        spec = torch.polar(mag, phase)  # (B, bins, N) complex
        n = h.shape[-1]
        y = torch.istft(spec, self.n_fft, self.istft_hop, window=self.window, center=True,
                        length=n * self.istft_hop)  # (B, N * istft_hop)
        return y.unsqueeze(1)
