"""Codecs: data <-> discrete codes (text BPE, image/video VQ, audio RVQ).

Importing this package registers every codec class, so :func:`load_codec` can open any codec folder.
"""

from omnitok.codecs.audio import AudioCodec
from omnitok.codecs.base import CheckpointError, Codec, CodecOutput, load_codec
from omnitok.codecs.debug import DebugAudioCodec, DebugImageCodec, DebugVideoCodec
from omnitok.codecs.frames import FrameCodec
from omnitok.codecs.global_motion import GlobalMotionCodec
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.sprite_motion import SpriteMotionCodec
from omnitok.codecs.text import TextCodec
from omnitok.codecs.video import VideoCodec

__all__ = ["AudioCodec", "CheckpointError", "Codec", "CodecOutput", "DebugAudioCodec", "DebugImageCodec",
           "DebugVideoCodec", "FrameCodec", "GlobalMotionCodec", "ImageCodec", "SpriteMotionCodec", "TextCodec", "VideoCodec", "load_codec"]
