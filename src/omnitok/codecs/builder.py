"""The one builder: a preset dict (from configs/codec/NAME.yaml) -> a codec with its quantizer.

A preset looks like::

    type: image            # image | video | audio
    codec: video           # video presets only: video (3-D, default) | frames | global-motion | sprite-motion
    model: {in_channels: 3, channels: 64, channel_mult: [1, 2, 2, 2], num_res_blocks: 1, z_channels: 64}
    quantizer: {name: vq, dim: 16, codebook_size: 1024, kmeans_init: true}

``quantizer.name`` picks the class (vq, rvq, pq, aq, fsq, lfq, bsq, gumbel:
:data:`omnitok.quantizers.registry.QUANTIZERS`); every other key is passed to its constructor unchanged, and the
codec is handed the built :class:`Quantizer`. Audio presets (``type: audio``) name AudioCodec arguments in
``model`` and the residual VQ in ``quantizer`` (``num_codebooks``, ``codebook_size``, ``quantizer_dropout`` and
its other keywords); the codec builds that RVQ through the same registry after its convolutions, the order every
trained audio codec was initialised in.
A video preset with ``image_from: image`` is not trained: :func:`derive_codec` builds it around an image codec
that is (``frames``, ``global-motion`` or ``sprite-motion``, whose ``sprite`` keys are window and image_size).
Components never read configs themselves. Preset files and ``key=value`` overrides are read by
:mod:`omnitok._overrides` (the same typed values as the LM presets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnitok import _overrides
from omnitok._overrides import apply_overrides, load_yaml, preset_file
from omnitok.codecs.audio import AudioCodec
from omnitok.codecs.base import Codec
from omnitok.codecs.frames import FrameCodec
from omnitok.codecs.global_motion import GlobalMotionCodec
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.sprite_motion import SpriteMotionCodec
from omnitok.codecs.video import VideoCodec
from omnitok.quantizers.registry import build_quantizer

__all__ = ["build_audio_codec", "build_codec", "derive_codec", "load_preset", "preset_path"]

CONFIG_DIR = _overrides.CONFIG_DIR / "codec"


def preset_path(name: str) -> Path:
    """configs/codec/NAME.yaml, or NAME itself when it is a path to a YAML file."""
    return preset_file("codec", name)


def load_preset(name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read configs/codec/NAME.yaml and apply ``a.b=value`` overrides (typed values: ``train.lr=1e-3`` is a float)."""
    path = preset_path(name)
    cfg = load_yaml(path.read_text()) or {}
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"{path}: a codec preset must be a mapping with a 'type' key (image, video or audio)")
    cfg.setdefault("name", path.stem)
    return apply_overrides(cfg, list(overrides or []))


def build_audio_codec(preset: dict[str, Any]) -> AudioCodec:
    """A ``type: audio`` preset -> AudioCodec (``model``: its arguments; ``quantizer``: the residual VQ's)."""
    model = dict(preset.get("model") or {})
    q = dict(preset.get("quantizer") or {})
    name = q.pop("name", "rvq")
    if name != "rvq":
        raise ValueError(f"audio preset {preset.get('name', '?')}: quantizer.name must be rvq (the codec keeps "
                         f"the first n_q residual stages), got {name!r}")
    for key in ("num_codebooks", "codebook_size", "quantizer_dropout"):
        if key in q:
            model[key] = q.pop(key)
    return AudioCodec(**model, quantizer_kwargs=q)


def build_codec(preset: dict[str, Any]) -> Codec:
    """Preset dict -> ImageCodec, VideoCodec (or FrameCodec / GlobalMotionCodec) or AudioCodec, its quantizer
    built by name."""
    kind = preset.get("type")
    if preset.get("image_from"):
        raise ValueError(f"preset {preset.get('name', '?')}: built around a trained {preset['image_from']} codec "
                         f"(image_from), not trained itself: derive_codec(preset, image_codec) builds it")
    if kind == "audio":
        return build_audio_codec(preset)
    model = dict(preset.get("model") or {})
    qcfg = dict(preset.get("quantizer") or {"name": "vq"})
    qname = qcfg.pop("name", "vq")
    if kind == "image":
        return ImageCodec(**model, quantizer=build_quantizer(qname, **qcfg))
    if kind == "video" and preset.get("codec", "video") in ("frames", "global-motion"):
        # an image codec (model + quantizer) on every frame (frames), or on the first one with global motion
        # steps for the rest (global-motion, its ``motion`` keys: step, max_step, aspect)
        image = {**model, "quantizer": qname, "quantizer_kwargs": qcfg}
        if preset["codec"] == "frames":
            return FrameCodec(image)
        return GlobalMotionCodec(image, **dict(preset.get("motion") or {}))
    if kind == "video":
        return VideoCodec(**model, quantizer=build_quantizer(qname, **qcfg))
    raise ValueError(f"build_codec: preset type must be 'image', 'video' or 'audio', got {kind!r}")


def derive_codec(preset: dict[str, Any], image: ImageCodec) -> Codec:
    """A video preset with ``image_from`` + the trained image codec it names -> the video codec around a copy of
    that codec's weights (nothing to train): ``codec`` frames, global-motion (``motion`` keys) or sprite-motion
    (``sprite`` keys window and image_size, ``motion`` keys, square frames of ``data.size`` px)."""
    kind = preset.get("codec")
    motion = dict(preset.get("motion") or {})
    if kind == "frames":
        return FrameCodec.from_image_codec(image)
    if kind == "global-motion":
        return GlobalMotionCodec.from_image_codec(image, **motion)
    if kind == "sprite-motion":
        size = (preset.get("data") or {}).get("size")
        if not isinstance(size, int):
            raise ValueError(f"preset {preset.get('name', '?')}: sprite-motion needs data.size (the frame side, px)")
        return SpriteMotionCodec.from_image_codec(image, frame_size=size, **dict(preset.get("sprite") or {}), **motion)
    raise ValueError(f"preset {preset.get('name', '?')}: image_from needs codec frames, global-motion or "
                     f"sprite-motion, got {kind!r}")
