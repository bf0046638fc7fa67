"""Speech WER blocks per seen / unseen voice and per voice (eval/tasks/_speech.py)."""

from __future__ import annotations

import pytest

from omnitok.eval.tasks._speech import voice_group, wer_block


def test_voice_group_from_meta() -> None:
    assert voice_group({"heldout_voice": True}) == "unseen"
    assert voice_group({"heldout_voice": False}) == "seen"
    assert voice_group({"voice": "awb"}) is None  # a build without held-out voices


def test_wer_block_splits_seen_and_unseen() -> None:
    pairs = [("one two", "one two"), ("three", "three"), ("four five", "four six"), ("six", "seven eight")]
    engines = ["flite", "flite", "espeak-ng", "flite"]
    groups = ["seen", "seen", "unseen", "unseen"]
    b = wer_block(pairs, engines, groups, voices=["awb", "awb", "en-gb+f4", "slt"])
    assert b["wer"] == pytest.approx(3 / 6) and b["n"] == 4
    assert b["per_voice_group"] == {"seen": {"wer": 0.0, "n": 2}, "unseen": {"wer": pytest.approx(3 / 3), "n": 2}}
    assert b["per_voice"]["slt"] == {"wer": 2.0, "n": 1} and b["per_voice"]["awb"]["wer"] == 0.0
    assert b["per_engine"]["flite"] == {"wer": pytest.approx(2 / 4), "n": 3}
    plain = wer_block(pairs, engines, [None] * 4)
    assert "per_voice_group" not in plain and "per_voice" not in plain
