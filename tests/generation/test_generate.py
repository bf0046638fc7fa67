"""generate(): every sample decodes; cached == naive; CFG at scale 1 == conditional; batches == single runs."""

from __future__ import annotations

import pytest
import torch
from gen_helpers import GRIDS, make_model, make_vocab

from omnitok.generation import generate
from omnitok.generation.cfg import guidance_scales
from omnitok.generation.constraints import step_table
from omnitok.generation.generate import decode_cached, left_pad, prepare_prompts
from omnitok.generation.sampling import SamplingParams
from omnitok.vocab import Audio, Image, Text, Video

PROMPTS = ["a red apple", "handwritten digit seven seven"]


@pytest.mark.parametrize("produce", ["image", "video", "audio", "text"])
def test_every_sample_decodes(produce):
    """Property test over random models, sampling seeds and settings: the ids always form the target."""
    kind = {"image": Image, "video": Video, "audio": Audio, "text": Text}[produce]
    for trial in range(3):
        vocab = make_vocab("flatten", 2) if trial == 2 else make_vocab()  # audio flatten pattern, 2 image levels
        model = make_model(vocab, seed=trial, init_std=[0.02, 0.5, 2.0][trial])
        out = generate(model, vocab, PROMPTS[trial % 2], produce, grid=GRIDS[produce], seed=trial, num_samples=2,
                       cfg_scale=[1.0, 2.0, 4.0][trial], temperature=[1.0, 0.7, 1.5][trial],
                       top_k=[0, 5, 50][trial], top_p=[1.0, 0.9, 0.5][trial],
                       max_new_tokens=12 if produce == "text" else None)
        assert len(out) == 2
        for doc, ids in zip(out.documents, out.ids):
            seg = doc.segments[-1]
            assert isinstance(seg, kind) and not doc.problems
            assert isinstance(doc.segments[0], Text)
            if produce == "image":
                assert tuple(seg.codes.shape[:2]) == GRIDS["image"] and seg.data.shape == (3, 12, 16)
            elif produce == "video":
                assert tuple(seg.codes.shape[:3]) == GRIDS["video"]
            elif produce == "audio":
                assert seg.codes.shape[0] == GRIDS["audio"][0] and seg.data.shape == (1, 5 * 80)
            else:
                assert ids[-1] == vocab.end_id("text") and len(ids) <= 12 and isinstance(seg.text, str)


@pytest.mark.parametrize("produce", ["image", "video", "audio", "text"])
def test_cached_equals_naive_greedy(produce):
    vocab = make_vocab()
    model = make_model(vocab, seed=3)
    kw = dict(grid=GRIDS[produce], temperature=0, cfg_scale=2.0, max_new_tokens=10 if produce == "text" else None)
    a = generate(model, vocab, PROMPTS, produce, method="cached", **kw)
    b = generate(model, vocab, PROMPTS, produce, method="naive", **kw)
    for x, y in zip(a.ids, b.ids):
        assert torch.equal(x, y)
    assert a.stats["forwards"] < b.stats["forwards"]


def test_cfg_scale_one_equals_conditional_sampling():
    """The batched [cond; uncond] path with scale 1 samples exactly what the conditional rows alone sample."""
    vocab = make_vocab()
    model = make_model(vocab, seed=4)
    table = step_table(vocab, "image", (3, 3))
    params = SamplingParams(temperature=1.0, top_k=20)
    cond, uncond = prepare_prompts(vocab, PROMPTS, "image", (3, 3), cfg=True)
    ids, mask = left_pad(cond + uncond, vocab.pad_id)
    guided, _ = decode_cached(model, ids, mask, table, params, guidance_scales(1.0, table.num_steps),
                              torch.Generator().manual_seed(5))
    ids, mask = left_pad(cond, vocab.pad_id)
    plain, _ = decode_cached(model, ids, mask, table, params, None, torch.Generator().manual_seed(5))
    assert torch.equal(guided, plain)


def test_batch_equals_each_prompt_alone():
    vocab = make_vocab()
    model = make_model(vocab, seed=5)
    prompts = ["zero", "the quick brown fox jumps", [Text(text="digit"), Image(codes=torch.zeros(2, 2, dtype=torch.long))]]
    kw = dict(grid=(2, 3), temperature=0, cfg_scale=3.0)
    batch = generate(model, vocab, prompts, "image", num_samples=2, **kw)
    assert len(batch) == 6
    for i, p in enumerate(prompts):
        alone = generate(model, vocab, p, "image", **kw)
        assert torch.equal(batch.ids[2 * i], alone.ids[0]) and torch.equal(batch.ids[2 * i + 1], alone.ids[0])


def test_seeds_reproduce_and_streaming():
    vocab = make_vocab()
    model = make_model(vocab, seed=6)
    seen = []
    a = generate(model, vocab, "zero", "text", seed=11, max_new_tokens=9, on_token=lambda s, t: seen.append(s))
    b = generate(model, vocab, "zero", "text", seed=11, max_new_tokens=9)
    assert torch.equal(a.ids[0], b.ids[0])
    assert seen == list(range(len(seen))) and len(seen) >= len(a.ids[0])
    c = [generate(model, vocab, "zero", "image", grid=(2, 2), seed=s).ids[0] for s in (1, 2, 3)]
    assert not all(torch.equal(c[0], x) for x in c[1:])


def test_bad_arguments():
    vocab = make_vocab()
    model = make_model(vocab)
    with pytest.raises(ValueError, match="produce"):
        generate(model, vocab, "x", "smell")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, vocab, "x", "image", grid=(4, 4), max_new_tokens=3)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, vocab, 3.5, "image")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_graph_decode_equals_eager():
    vocab = make_vocab()
    model = make_model(vocab, seed=12).cuda()
    kw = dict(grid=(4, 4), temperature=0, cfg_scale=2.0)
    a = generate(model, vocab, PROMPTS, "image", cuda_graph=True, **kw)
    b = generate(model, vocab, PROMPTS, "image", cuda_graph=False, **kw)
    for x, y in zip(a.ids, b.ids):
        assert torch.equal(x, y)


def test_until_end_audio_stops_where_the_model_ends_it():
    """Free-length audio: every sample decodes, ends on a whole frame, no later than the grid's T; a model that
    puts its mass on END_AUDIO stops at min_frames; cached == naive with greedy sampling."""
    from omnitok.data.debug import debug_vocabulary

    vocab = debug_vocabulary(audio_pattern="flatten", audio_levels=2)
    model = make_model(vocab, seed=5, init_std=1.0)
    T = 7
    out = generate(model, vocab, PROMPTS, "audio", grid=(T,), until_end=True, min_frames=2, seed=1, num_samples=3,
                   cfg_scale=2.0)
    for doc, ids in zip(out.documents, out.ids):
        seg = doc.segments[-1]
        assert isinstance(seg, Audio) and not doc.problems
        assert ids[-1] == vocab.end_id("audio") and len(ids) % 2 == 1
        assert 2 <= seg.codes.shape[0] <= T and seg.data.shape == (1, seg.codes.shape[0] * 80)
    push = torch.zeros(vocab.size)
    push[vocab.end_id("audio")] = 100.0  # make END_AUDIO the most likely id wherever it is allowed
    model.lm_head.register_forward_hook(lambda mod, inp, out: out + push)
    greedy = dict(grid=(T,), until_end=True, min_frames=3, temperature=0, cfg_scale=1.0)
    a = generate(model, vocab, PROMPTS, "audio", method="cached", **greedy)
    b = generate(model, vocab, PROMPTS, "audio", method="naive", **greedy)
    for x, y in zip(a.ids, b.ids):
        assert torch.equal(x, y) and len(x) == 3 * 2 + 1
    assert all(seg.codes.shape[0] == 3 for seg in a.outputs)
