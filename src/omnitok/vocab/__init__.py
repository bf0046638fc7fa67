"""The unified vocabulary: special tokens, one id range per codec, interleaved documents, codebook patterns."""

from omnitok.vocab.document import TASKS, Audio, Document, Image, Segment, Text, Uncond, Video, segments_equal
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.grammar import GrammarState
from omnitok.vocab.patterns import (
    delay_codes,
    flatten_codes,
    from_stream,
    to_stream,
    undelay_codes,
    unflatten_codes,
)
from omnitok.vocab.special import MODALITIES, MODALITY_IDS, SpecialTokens
from omnitok.vocab.vocabulary import CodecEntry, Vocabulary, codec_weights_hash

__all__ = [
    "MODALITIES",
    "MODALITY_IDS",
    "TASKS",
    "Audio",
    "CodecEntry",
    "Document",
    "GrammarState",
    "Image",
    "Segment",
    "SpecialTokens",
    "Text",
    "Uncond",
    "Video",
    "Vocabulary",
    "VocabularyError",
    "codec_weights_hash",
    "delay_codes",
    "flatten_codes",
    "from_stream",
    "segments_equal",
    "to_stream",
    "undelay_codes",
    "unflatten_codes",
]
