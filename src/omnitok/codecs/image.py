"""ImageCodec: conv encoder -> any quantizer -> mirrored conv decoder (VQ-VAE / VQGAN family).

Images are float tensors (B, C, H, W) in [-1, 1]; H and W must be divisible by the downsampling
factor f = 2 ** (len(channel_mult) - 1) (f = 4, 8 or 16 for 3, 4 or 5 levels). The code grid follows
the input: 64x64 at f8 -> 8x8 codes, 64x128 -> 8x16. Codes are (B, H/f, W/f, num_codebooks) int64.

Channels: ``in_channels`` is 3 (RGB) or 1 (greyscale). File loaders convert with
:func:`omnitok.io.image.to_channels` (greyscale replicated to RGB, alpha composited on white,
RGB -> L by ITU-R 601 luma), so the codec itself only ever sees the channel count it was built for.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from omnitok.codecs.base import CodecOutput, QuantizedCodec, codec_quantizer
from omnitok.nn.conv import ConvDecoder2d, ConvEncoder2d
from omnitok.quantizers.base import Quantizer

__all__ = ["CodecOutput", "ConvCodec", "ImageBasedCodec", "ImageCodec"]  # CodecOutput: defined in codecs/base.py


def check_float_batch(x: Tensor, ndim: int, channels: int, who: str, layout: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{who}: input must be a torch.Tensor {layout}, got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{who}: input must be shaped {layout}, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{who}: expected {channels} channels in dim 1 of {layout}, got shape {tuple(x.shape)} "
            "(convert greyscale/alpha images with omnitok.io.image.to_channels)"
        )
    if not x.is_floating_point():
        raise ValueError(f"{who}: input must be a float tensor in [-1, 1], got dtype {x.dtype}")


def check_code_batch(codes: Tensor, ndim: int, who: str, layout: str) -> None:
    """ValueError naming ``who`` unless ``codes`` is a tensor of ``ndim`` dims (the ``layout`` a decoder takes)."""
    if not isinstance(codes, Tensor) or codes.dim() != ndim:
        shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
        raise ValueError(f"{who}.decode: codes must be shaped {layout}, got {shape}")


def spatial_grid(h: int, w: int, factor: int, who: str, what: str) -> tuple[int, int]:
    """An (H, W) ``what`` (image, frame) -> its code grid (H/f, W/f); ValueError unless f divides both."""
    f = factor
    if h <= 0 or w <= 0 or h % f or w % f:
        raise ValueError(
            f"{who}: {what} size {h}x{w} is not divisible by the downsampling factor f={f}; "
            f"resize or crop to a multiple of {f} (e.g. {max(f, h // f * f)}x{max(f, w // f * f)})"
        )
    return (h // f, w // f)


class ConvCodec(QuantizedCodec):
    """What the image and video codecs share: their arguments, config, quantizer and layers, built in this order (so
    seeded weights stay the same): ``encoder`` (ConvEncoder2d), the subclass's layers after it
    (:meth:`build_after_encoder`: the video codec's temporal downsampling), ``quant_conv`` (1x1 to the quantizer's
    dim), ``post_quant_conv``, the subclass's layers before the decoder (:meth:`build_before_decoder`), ``decoder``
    (ConvDecoder2d).

    ``quantizer``: a :class:`Quantizer` built by ``build_quantizer`` (codecs/builder.py passes one), or its name
    with ``quantizer_kwargs`` (the plain form config.json records, which ``from_pretrained`` reads back). The
    other arguments are plain values, saved in config.json."""

    #: fewest levels of ``channel_mult`` (downsampling factor f = 2 ** (levels - 1))
    min_levels: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 64,
        channel_mult: list[int] | tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        z_channels: int = 64,
        quantizer: Quantizer | str = "vq",
        quantizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        if in_channels not in (1, 3):
            raise ValueError(f"{who}: in_channels must be 1 or 3, got {in_channels}")
        if len(channel_mult) < self.min_levels:
            raise ValueError(f"{who}: channel_mult needs >= {self.min_levels} levels "
                             f"(f >= {2 ** (self.min_levels - 1)}), got {list(channel_mult)}")
        quantizer, qname, quantizer_kwargs = codec_quantizer(quantizer, quantizer_kwargs, who)
        self.config = {"in_channels": in_channels, "channels": channels, "channel_mult": list(channel_mult),
                       "num_res_blocks": num_res_blocks, "attention": attention, "z_channels": z_channels,
                       **self.own_config(), "quantizer": qname, "quantizer_kwargs": quantizer_kwargs}
        self.in_channels = in_channels
        self.factor = 2 ** (len(channel_mult) - 1)
        self.quantizer: Quantizer = quantizer
        dim = self.quantizer.dim
        self.encoder = ConvEncoder2d(in_channels, z_channels, channels, channel_mult, num_res_blocks, attention)
        self.build_after_encoder(z_channels)
        self.quant_conv = nn.Conv2d(z_channels, dim, 1)
        self.post_quant_conv = nn.Conv2d(dim, z_channels, 1)
        self.build_before_decoder(z_channels)
        self.decoder = ConvDecoder2d(z_channels, in_channels, channels, channel_mult, num_res_blocks, attention)
        self.weights_sha256: str | None = None

    def own_config(self) -> dict[str, Any]:
        """A subclass's own config entries (set before ``super().__init__``), saved between the conv ones and the
        quantizer's."""
        return {}

    def build_after_encoder(self, z_channels: int) -> None:
        """A subclass's layers between the encoder and ``quant_conv`` (none here)."""

    def build_before_decoder(self, z_channels: int) -> None:
        """A subclass's layers between ``post_quant_conv`` and the decoder (none here)."""

    # ----- what a subclass defines -------------------------------------------------------------
    #: the codes a decoder takes, e.g. "(B, h, w, num_codebooks)" (one name per dimension)
    code_layout: ClassVar[str]

    @abstractmethod
    def check_input(self, x: Tensor) -> None:
        """ValueError naming the problem when ``x`` is not a batch this codec takes."""

    @abstractmethod
    def encode_latents(self, x: Tensor) -> Tensor:
        """A batch -> continuous pre-quantization latents (B, D, *code_grid)."""

    @abstractmethod
    def decode_latents(self, latents: Tensor) -> Tensor:
        """(B, D, *code_grid) latents -> a batch shaped like the input."""

    # ----- codec interface ---------------------------------------------------------------------
    def forward(self, x: Tensor) -> CodecOutput:
        """Training / reconstruction pass: a batch -> CodecOutput with recon shaped like ``x``."""
        self.check_input(x)
        q = self.quantizer.forward_channel_first(self.encode_latents(x))
        return CodecOutput(self.decode_latents(q.latents), q.codes, q.loss, q.metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """A batch in [-1, 1] -> codes (B, *code_grid, num_codebooks) int64."""
        self.check_input(x)
        return self.quantizer.forward_channel_first(self.encode_latents(x)).codes.long()

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes shaped :attr:`code_layout` -> a batch, roughly in [-1, 1] (not clamped)."""
        check_code_batch(codes, self.code_layout.count(",") + 1, type(self).__name__, self.code_layout)
        latents = self.quantizer.codes_to_latents(codes)  # (B, *grid, D); ValueError when out of range
        return self.decode_latents(latents.movedim(-1, 1))


class ImageCodec(ConvCodec):
    """Conv encoder, quantizer, mirrored decoder; the arguments are :class:`ConvCodec`'s, ``channel_mult`` with
    at least two levels (f >= 2)."""

    modality = "image"
    min_levels = 2
    code_layout = "(B, h, w, num_codebooks)"

    # ----- shapes ------------------------------------------------------------------------------
    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, H, W) or (H, W) -> (H/f, W/f); ValueError when H or W is not divisible by f."""
        if len(input_shape) not in (2, 3):
            raise ValueError(f"ImageCodec.code_grid: expected (C, H, W) or (H, W), got {tuple(input_shape)}")
        return spatial_grid(*input_shape[-2:], self.factor, "ImageCodec", "image")

    # ----- the halves ----------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        check_float_batch(x, 4, self.in_channels, "ImageCodec", "(B, C, H, W)")
        self.code_grid(tuple(x.shape[1:]))

    def encode_latents(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> continuous pre-quantization latents (B, D, H/f, W/f)."""
        return self.quant_conv(self.encoder(x))

    def decode_latents(self, latents: Tensor) -> Tensor:
        """(B, D, h, w) -> images (B, C, h*f, w*f)."""
        return self.decoder(self.post_quant_conv(latents))


_C = TypeVar("_C", bound="ImageBasedCodec")


class ImageBasedCodec(QuantizedCodec):
    """What the video codecs built around one :class:`ImageCodec` (``self.image``, its arguments in the
    constructor's first argument ``image``) share: its quantizer, and a copy of a trained one's weights."""

    image: ImageCodec

    @classmethod
    def from_image_codec(cls: type[_C], image: ImageCodec, **kwargs: Any) -> _C:
        """A codec of this class (its other constructor arguments in ``kwargs``) holding a copy of a trained image
        codec's weights, in eval mode."""
        codec = cls(dict(image.config), **kwargs)
        codec.image.load_state_dict(image.state_dict())
        return codec.eval()

    @property
    def quantizer(self) -> Quantizer:
        """The image codec's quantizer (the trainer's EMA copies its state)."""
        return self.image.quantizer
