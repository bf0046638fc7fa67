"""The per-step tables agree with the vocabulary's grammar; CFG schedules; scale 1 is the conditional logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gen_helpers import make_vocab

from omnitok.generation.cfg import guidance_scales, guide
from omnitok.generation.constraints import prompt_head_length, step_table
from omnitok.vocab import Text


@pytest.mark.parametrize("pattern,levels", [("delay", 1), ("flatten", 1), ("delay", 2)])
@pytest.mark.parametrize("target,grid", [("image", (3, 5)), ("video", (2, 2, 3)), ("audio", (4,)), ("audio", (1,)),
                                         ("text", None)])
def test_table_replays_through_the_grammar(pattern, levels, target, grid):
    vocab = make_vocab(pattern, levels)
    table = step_table(vocab, target, grid, max_new_tokens=7)
    prompt = vocab.encode_prompt([Text(codes=torch.tensor([1, 2]))], target, grid if target in ("image", "video")
                                 else None)
    rng = np.random.default_rng(0)
    for _ in range(3):
        g = vocab.grammar().step_many(prompt.tolist())
        ids = prompt.tolist()
        for s in range(table.num_steps):
            allowed = table.bias[table.index[s]] == 0
            # every id the table allows, the grammar allows
            assert not (allowed & ~g.allowed_mask()).any(), f"step {s}"
            choice = rng.choice(allowed.nonzero().flatten().numpy())
            g.step(int(choice))
            ids.append(int(choice))
            if table.stop_id is not None and choice == table.stop_id:
                break
        assert g.complete
        doc = vocab.decode(ids)
        assert doc.segments[-1].modality == target
    assert prompt_head_length(target) >= 1


def test_table_errors():
    vocab = make_vocab()
    with pytest.raises(ValueError, match="grid"):
        step_table(vocab, "image", (3,))
    with pytest.raises(ValueError, match="max_new_tokens"):
        step_table(vocab, "text")


def test_guidance_schedules():
    torch.testing.assert_close(guidance_scales(3.0, 4), torch.full((4,), 3.0))
    torch.testing.assert_close(guidance_scales(3.0, 3, "linear"), torch.tensor([1.0, 2.0, 3.0]))
    s = guidance_scales(4.0, 10, interval=(0.2, 0.6))
    assert s.tolist() == [1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="cfg_schedule"):
        guidance_scales(2.0, 3, "cosine")


def test_guide_scale_one_is_conditional_bit_for_bit():
    torch.manual_seed(0)
    logits = torch.randn(6, 11) * 30
    cond, uncond = logits[:3], logits[3:]
    assert torch.equal(guide(logits, 1.0), cond)
    torch.testing.assert_close(guide(logits, 2.5), uncond + 2.5 * (cond - uncond))


@pytest.mark.parametrize("pattern,levels", [("flatten", 4), ("delay", 1), ("flatten", 1)])
def test_until_end_audio_table_replays_and_stops_on_frames(pattern, levels):
    from omnitok.data.debug import debug_vocabulary

    vocab = debug_vocabulary(audio_pattern=pattern, audio_levels=levels)
    T, n_q = 6, levels
    table = step_table(vocab, "audio", (T,), until_end=True, min_frames=2)
    end = vocab.end_id("audio")
    assert table.stop_id == end and table.num_steps == T * n_q + 1
    may_end = [s for s in range(table.num_steps) if table.step_bias(s)[end] == 0]
    assert may_end == [f * n_q for f in range(2, T + 1)]  # whole frames only, from min_frames on; forced at T
    prompt = vocab.encode_prompt([Text(codes=torch.tensor([1, 2]))], "audio")
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(12):
        g = vocab.grammar().step_many(prompt.tolist())
        ids = prompt.tolist()
        for s in range(table.num_steps):
            allowed = (table.step_bias(s) == 0).nonzero().flatten().numpy()
            others = allowed[allowed != end]
            choice = int(end if len(others) == 0 or (end in allowed and rng.random() < 0.3) else rng.choice(others))
            assert g.allowed_mask()[choice], f"step {s}"
            g.step(choice)
            ids.append(choice)
            if choice == end:
                break
        assert g.complete
        seg = vocab.decode(ids).segments[-1]
        assert seg.modality == "audio" and 2 <= seg.codes.shape[0] <= T
        lengths.add(seg.codes.shape[0])
    assert len(lengths) > 1


def test_until_end_errors():
    from omnitok.data.debug import debug_vocabulary

    with pytest.raises(ValueError, match="delay pattern"):
        step_table(debug_vocabulary(audio_pattern="delay", audio_levels=4), "audio", (5,), until_end=True)
    vocab = debug_vocabulary(audio_pattern="flatten", audio_levels=1)
    with pytest.raises(ValueError, match="min_frames"):
        step_table(vocab, "audio", (5,), until_end=True, min_frames=6)
    with pytest.raises(ValueError, match="until_end is for audio"):
        step_table(vocab, "image", (2, 2), until_end=True)
