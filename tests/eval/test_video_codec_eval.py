"""The video codec evaluation: what the judges read in reconstructions of moving-digit clips, and the judges' own
check (real, shuffled-frame and repeated-frame clips), on a tiny built video split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omnitok.codecs.builder import build_codec, load_preset
from omnitok.data.shards import ShardWriter
from omnitok.data.types import Example
from omnitok.eval.video_codec import check_judges, evaluate, judge_clips, load_clips
from omnitok.io.video import write_mp4

VECTORS = {"right": (1, 0), "down": (0, 1), "up-left": (-1, -1)}


def _clip(direction: str, frames: int = 5, size: int = 16) -> np.ndarray:
    """(T, size, size, 3) uint8: a white 4x4 block moving 2 px per frame in ``direction`` from the centre."""
    dx, dy = VECTORS[direction]
    out = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        x, y = 6 + dx * (2 * t - frames + 1) // 2, 6 + dy * (2 * t - frames + 1) // 2
        out[t, y : y + 4, x : x + 4] = 255
    return out


class _Judge:
    """Reads every frame as digit 3 (what is under test is the bookkeeping, not the CNN)."""

    test_accuracy = 1.0

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), 3)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("video_root")
    w = ShardWriter(root / "datasets" / "video" / "test-000000.tar")
    for i, d in enumerate(["right", "down", "up-left", "right"]):
        w.write(Example(f"v{i}", {"mp4": write_mp4(_clip(d), 8)},
                        {"caption": f"the digit 3 moving {d}", "kind": "digits", "motion": "single", "digits": "3"}))
    w.write(Example("e0", {"mp4": write_mp4(255 - _clip("down"), 8)},
                    {"caption": "a face moving down", "kind": "emoji", "motion": "single"}))
    w.close()
    return root


def test_judge_check_on_real_shuffled_and_repeated_clips(video_root, monkeypatch):
    monkeypatch.setenv("OMNITOK_HOME", str(video_root))
    x, metas = load_clips("video", "test", 16, 5)
    assert x.shape == (5, 5, 3, 16, 16) and [m["kind"] for m in metas].count("digits") == 4
    res = check_judges(_Judge(), x.float() / 127.5 - 1, metas)
    assert res["real"]["clips"] == 4 and res["real"]["direction_accuracy"] == 1.0
    assert res["real"]["frame_accuracy"] == 1.0 and res["real"]["frames"] == 20
    assert res["repeated_frame"]["directions"] == {"still": 4}
    assert res["shuffled_frames"]["direction_accuracy"] < 1.0


def test_judge_clips_counts_wrong_answers():
    v = torch.from_numpy(_clip("right")).permute(0, 3, 1, 2).float() / 127.5 - 1
    res = judge_clips(_Judge(), [v, v], [{"digits": "3", "caption": "the digit 3 moving right"},
                                         {"digits": "5", "caption": "the digit 5 moving left"}])
    assert res["frame_accuracy"] == 0.5 and res["direction_accuracy"] == 0.5 and res["directions"] == {"right": 2}


def test_evaluate_a_global_motion_codec(video_root, monkeypatch, tmp_path):
    monkeypatch.setenv("OMNITOK_HOME", str(video_root))
    torch.manual_seed(0)
    codec = build_codec(load_preset("video-motion-debug")).eval()
    res = evaluate(codec, "video", "test", tmp_path, size=16, frames=5, classifier=_Judge())
    assert res["code_grid"] == [1, 5, 4] and res["tokens_per_clip"] == 20 and res["clips"] == 5
    assert set(res["per_kind"]) == {"digits", "emoji"} and res["per_kind"]["emoji"]["clips"] == 1
    # the motion steps are found on real clips, so the untrained codec's blobs still move the right way
    rec = res["judges"]["reconstructed"]
    assert rec["clips"] == 4 and res["judges"]["original"]["direction_accuracy"] == 1.0
    assert res["judge_check"]["repeated_frame"]["directions"] == {"still": 4}
    assert (tmp_path / "recon_grid.png").is_file()
    json.dumps(res)
