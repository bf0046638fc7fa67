"""Speech recognition as an outside judge: pocketsphinx (CMU Sphinx, PyPI ``pocketsphinx``, ships its en-us model).

Two modes:

* ``"lm"``: the full English acoustic model + its trigram language model + CMUdict (sentences, names);
* ``"digits"``: the same acoustic model constrained by a JSGF grammar ``(zero | oh | one | ... | nine)+``
  (spoken digit strings), so the judge measures acoustics rather than the language model's guesses.

Audio goes in as float (T,) in [-1, 1] at any rate; it is resampled to 16 kHz (the model's rate) and
converted to 16-bit PCM. No weights are downloaded: the model folder comes with the wheel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DIGIT_GRAMMAR", "PocketSphinx", "transcribe"]

DIGIT_GRAMMAR = (
    "#JSGF V1.0;\ngrammar digits;\n"
    "public <digits> = <digit>+;\n"
    "<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;\n"
)
MODES = ("lm", "digits")


class PocketSphinx:
    """A reusable pocketsphinx decoder with the full LM and a digit-grammar search."""

    sample_rate = 16000

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the ASR judge needs pocketsphinx: pip install 'omnitok[eval]'") from e
        self.decoder = Decoder(loglevel="FATAL")
        self._lm_search = self.decoder.current_search()
        self.decoder.add_jsgf_string("digits", DIGIT_GRAMMAR)

    def transcribe(self, audio: np.ndarray, sample_rate: int = 16000, mode: str = "lm") -> str:
        """Mono float audio (T,) -> lower-case transcript ("" when nothing is recognised)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size == 0:
            raise ValueError("PocketSphinx.transcribe: empty audio")
        if not np.isfinite(x).all():
            raise ValueError("PocketSphinx.transcribe: audio contains NaN/inf samples")
        if sample_rate != self.sample_rate:
            from omnitok.io.audio import resample

            x = resample(x, int(sample_rate), self.sample_rate)
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
        self.decoder.activate_search("digits" if mode == "digits" else self._lm_search)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        words = hyp.hypstr.split() if hyp is not None else []
        return " ".join(w.split("(")[0] for w in words if not w.startswith("<") and not w.startswith("["))


_DEFAULT: PocketSphinx | None = None


def transcribe(audio: np.ndarray, sample_rate: int = 16000, mode: str = "lm") -> str:
    """Module-level shortcut on a shared :class:`PocketSphinx`."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PocketSphinx()
    return _DEFAULT.transcribe(audio, sample_rate, mode)
