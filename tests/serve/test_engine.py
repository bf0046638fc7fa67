"""The batcher without HTTP: jobs with the same settings share one generate call (waiting for as many rows as the
last batch had), a seeded job runs alone and repeats, a failing batch fails only its own jobs, and streamed text
is the final text."""

from __future__ import annotations

import pytest

from omnitok.serve.engine import Batcher, Job, TextStream, load_served_model
from omnitok.vocab.document import Text


@pytest.fixture(scope="module")
def served(served_run):
    return load_served_model(str(served_run / "lm" / "final"), str(served_run / "vocab"), "cpu")


def test_load_served_model(served, served_run):
    assert served.modalities == ["audio", "image", "text", "video"]
    assert served.image_size == 32 and served.video_frames == 5 and served.audio_rate == 16000
    # quickstart-debug-video: a 4x4 first frame (f8 at 32 px) and one row of 4 motion steps for frames 2-5
    assert served.image_grid(32, 32) == (8, 8) and served.video_grid(32, 32) == (1, 5, 4)
    with pytest.raises(ValueError, match="divisible"):
        served.image_grid(30, 30)


def test_jobs_with_equal_settings_share_a_batch(served):
    b = Batcher(served, max_batch=8, max_wait=0.5)
    b.last_rows["image"] = 6  # as after a batch of 6: the first job waits (up to 0.5 s) for 6 rows
    try:
        same = [Job("image", [Text(text=f"digit {i}")], 2, {"grid": (2, 2)}) for i in range(3)]
        other = Job("image", [Text(text="digit 9")], 1, {"grid": (3, 2)})
        futures = [b.submit(j) for j in [*same, other]]
        outs = [f.result(timeout=120) for f in futures]
        assert [len(o) for o in outs] == [2, 2, 2, 1]
        assert [tuple(o.outputs[0].data.shape) for o in outs] == [(3, 8, 8)] * 3 + [(3, 12, 8)]
        assert outs[0].stats["batch_requests"] == 3 and outs[0].stats["batch_rows"] == 6
        assert outs[3].stats["batch_rows"] == 1 and b.batches == [6, 1] and b.last_rows["image"] == 1
        with pytest.raises(ValueError, match="more than the server's batch"):
            b.submit(Job("image", [Text(text="x")], 9, {"grid": (2, 2)}))
    finally:
        b.close()


def test_seeded_jobs_run_alone_and_repeat(served):
    b = Batcher(served, max_batch=8, max_wait=0.3)
    b.last_rows["text"] = 3  # a load that would batch three jobs: the seeded ones still run alone
    try:
        jobs = [Job("text", [Text(text="seven")], 1, {"max_new_tokens": 6, "seed": 4}) for _ in range(2)]
        jobs.append(Job("text", [Text(text="seven")], 1, {"max_new_tokens": 6}))
        outs = [f.result(timeout=120) for f in [b.submit(j) for j in jobs]]
        assert [o.stats["batch_rows"] for o in outs] == [1, 1, 1]
        assert outs[0].ids[0].tolist() == outs[1].ids[0].tolist()
        assert b.last_rows["text"] == 1  # set by the unseeded job only
    finally:
        b.close()


def test_a_failing_batch_fails_only_its_jobs(served):
    b = Batcher(served, max_batch=4, max_wait=0.0)
    try:
        bad = b.submit(Job("image", [Text(text="x")], 1, {"grid": (1000, 1000)}))
        with pytest.raises(ValueError):
            bad.result(timeout=120)
        good = b.submit(Job("image", [Text(text="x")], 1, {"grid": (2, 2)}))
        assert len(good.result(timeout=120)) == 1
    finally:
        b.close()
    assert not b.thread.is_alive()


def test_streamed_text_is_the_final_text(served):
    got: list[tuple[int, str]] = []
    b = Batcher(served, max_batch=4, max_wait=0.0)
    try:
        job = Job("text", [Text(text="one two")], 2, {"max_new_tokens": 10}, on_text=lambda r, s: got.append((r, s)))
        out = b.submit(job).result(timeout=120)
    finally:
        b.close()
    for r in range(2):
        streamed = "".join(s for row, s in got if row == r)
        assert (out.outputs[r].text or "").startswith(streamed)  # the server sends the rest in its last chunk


def test_text_stream_holds_back_partial_characters(served):
    vocab = served.vocab
    st = TextStream(vocab)
    ids = vocab.codecs["text"].encode(["é!"])[0] + vocab.entries["text"].offset
    pieces = [st.push(int(i)) for i in ids]
    assert "".join(pieces) == "é!" and "\ufffd" not in "".join(pieces)
    assert st.push(vocab.end_id("text")) == "" and st.finished and st.push(int(ids[0])) == ""
