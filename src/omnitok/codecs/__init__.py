"""Codecs: data <-> discrete codes (text BPE, image/video VQ, audio RVQ)."""

from omnitok.codecs.base import CheckpointError, Codec, load_codec

__all__ = ["CheckpointError", "Codec", "load_codec"]
