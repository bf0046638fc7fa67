"""omnitok: every modality as a sequence of tokens, learned by one next-token model."""

from omnitok.codecs.base import CheckpointError, Codec, load_codec
from omnitok.quantizers.base import Quantizer, QuantizerOutput

__version__ = "0.1.0"

__all__ = ["CheckpointError", "Codec", "Quantizer", "QuantizerOutput", "load_codec", "__version__"]
