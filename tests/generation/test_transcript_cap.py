"""A transcript never runs on: text after a speech prompt is capped by the clip's duration."""

from __future__ import annotations

import math

import torch
from gen_helpers import make_model

from omnitok.data.debug import debug_vocabulary
from omnitok.generation.generate import generate
from omnitok.generation.transcript_cap import TEXT_IDS_PER_SECOND, TEXT_IDS_SLACK, transcript_cap
from omnitok.vocab.document import Audio, Text


def _codes(frames: int, n_q: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 32, (frames, n_q), generator=torch.Generator().manual_seed(seed))


def test_cap_from_duration() -> None:
    one_second = Audio(codes=torch.zeros(50, 1, dtype=torch.long))
    assert transcript_cap([one_second], 50.0) == math.ceil(TEXT_IDS_PER_SECOND) + TEXT_IDS_SLACK
    assert (
        transcript_cap([Text("hi"), Audio(codes=torch.zeros(25, 1, dtype=torch.long))], 50.0)
        == math.ceil(TEXT_IDS_PER_SECOND * 0.5) + TEXT_IDS_SLACK
    )
    assert transcript_cap([one_second, Text("and then")], 50.0) is None  # speech is not the last segment
    assert transcript_cap([Audio(data=torch.zeros(1, 160))], 50.0) is None  # no codes yet
    assert transcript_cap([one_second], None) is None and transcript_cap([], 50.0) is None


def test_generate_caps_each_row_and_ends_with_end() -> None:
    vocab = debug_vocabulary()
    vocab.codecs["audio"].frame_rate = 100.0  # the debug codec has no clock; say 100 frames per second
    n_q = vocab.codecs["audio"].num_codebooks
    model = make_model(vocab, seed=1, init_std=0.5, max_seq_len=256)
    prompts = [[Audio(codes=_codes(3, n_q, 0))], [Audio(codes=_codes(30, n_q, 1))]]
    caps = [transcript_cap(p, 100.0) for p in prompts]  # 0.03 s -> 5 ids, 0.3 s -> 8 ids
    assert caps == [5, 8]
    kw = dict(temperature=1.0, top_p=1.0, max_new_tokens=64, seed=0, num_samples=4)
    free = generate(model, vocab, prompts, "text", cap_transcripts=False, **kw)
    capped = generate(model, vocab, prompts, "text", **kw)
    end = vocab.end_id("text")
    # without the cap this untrained model runs on past the cap (the test would fail without it) ...
    assert max(len(ids) for ids in free.ids[:4]) > caps[0] and max(len(ids) for ids in free.ids[4:]) > caps[1]
    # ... with it every row stops within its own clip's cap, with END
    for r, ids in enumerate(capped.ids):
        assert len(ids) <= caps[r // 4] and int(ids[-1]) == end
    # a row the cap does not cut is the same draw as without the cap
    for a, b, r in zip(free.ids, capped.ids, range(8)):
        if len(a) <= caps[r // 4]:
            assert torch.equal(a, b)


def test_text_prompt_keeps_max_new_tokens() -> None:
    vocab = debug_vocabulary()
    vocab.codecs["audio"].frame_rate = 100.0
    model = make_model(vocab, seed=1, init_std=0.5)
    out = generate(
        model,
        vocab,
        [[Text("three")]],
        "text",
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=40,
        seed=0,
        num_samples=4,
    )
    assert max(len(ids) for ids in out.ids) > 12  # no speech in the prompt: no cap
