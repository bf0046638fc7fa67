"""Masked parallel decoding: the schedule, always a decodable H x W image, greedy is deterministic, the cached
decoder equals the uncached reference, and a debug model trained on masked + next-token documents samples the
right images in a few forwards."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from gen_helpers import make_model
from gen_helpers import make_vocab as plain_vocab

from omnitok.data.debug import debug_vocabulary
from omnitok.data.token_shards import TokenShardWriter
from omnitok.data.tokenize import shard_meta
from omnitok.generation import generate, masked_counts, step_table
from omnitok.generation.masked import decode_masked
from omnitok.generation.sampling import SamplingParams
from omnitok.model.transformer import Transformer
from omnitok.vocab import TASKS, Document, Image, Text, Vocabulary
from omnitok.vocab.errors import VocabularyError


@functools.cache
def make_vocab(image_levels: int = 1) -> Vocabulary:
    return debug_vocabulary(image_levels=image_levels, with_mask=True)


@pytest.mark.parametrize("n,steps", [(64, 12), (64, 4), (12, 16), (5, 12), (1, 1), (256, 8)])
def test_schedule_fixes_at_least_one_code_per_step_and_ends_with_none(n, steps):
    c = masked_counts(n, steps)
    assert 1 <= len(c) <= steps and c[-1] == 0
    assert all(a > b for a, b in zip([n, *c], c))  # at least one code fixed per step
    if n >= steps:
        assert len(c) == steps
        # the cosine: few codes fixed first, many last (MaskGIT)
        assert n - c[0] <= c[-2] - c[-1] if steps > 2 else True


@pytest.mark.parametrize("levels", [1, 2])
def test_masked_decoding_always_yields_a_decodable_image(levels):
    v = make_vocab(levels)
    m = make_model(v, seed=levels, init_std=1.0)  # random and peaked: codes from every level's range
    for seed in range(3):
        out = generate(m, v, ["a", "bb"], "image", grid=(3, 4), method="masked", steps=5, seed=seed,
                       cfg_scale=2.0, top_k=0)
        assert out.stats["forwards"] == 5
        for doc in out.documents:
            img = doc.segments[-1]
            assert isinstance(img, Image) and tuple(img.codes.shape) == (3, 4, levels)
            assert img.data is not None and tuple(img.data.shape[-2:]) == (12, 16)
            assert torch.equal(v.encode(v.decode(v.encode(doc))), v.encode(doc))


@pytest.mark.parametrize("levels", [1, 2])
def test_greedy_masked_decoding_is_deterministic_and_cached_equals_reference(levels):
    v = make_vocab(levels)
    m = make_model(v, seed=3)
    runs = [generate(m, v, ["x", "yz"], "image", grid=(3, 4), method="masked", steps=4, temperature=0, seed=s,
                     cfg_scale=3.0, decode_data=False).ids for s in (0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    table = step_table(v, "image", (3, 4))
    ids = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])
    ids[0, :2] = v.pad_id
    mask = torch.tensor([[False, False, True, True, True], [True] * 5])
    # the cached path projects hidden states onto the image rows of the head only; the reference computes the
    # whole vocabulary's logits at every step and slices them
    for params in (SamplingParams(temperature=0), SamplingParams(temperature=1.0),
                   SamplingParams(temperature=1.0, top_k=5)):
        toks = []
        for use_cache in (True, False):
            g = torch.Generator().manual_seed(0)
            t, stats = decode_masked(m, ids, mask, table, params, v.mask_id, steps=6, generator=g,
                                     use_cache=use_cache)
            toks.append(t)
            assert stats["forwards"] == 6
        assert torch.equal(*toks)
    # top-k = 1 draws among one candidate per position: in one step (every code fixed at once, whatever the
    # confidences) that is each position's argmax, mapped back from candidate to code
    g = torch.Generator().manual_seed(0)
    top1, _ = decode_masked(m, ids, mask, table, SamplingParams(temperature=1.0, top_k=1), v.mask_id, steps=1,
                            generator=g)
    greedy, _ = decode_masked(m, ids, mask, table, SamplingParams(temperature=0), v.mask_id, steps=1)
    assert torch.equal(top1, greedy)


def test_masked_method_is_refused_where_it_cannot_work():
    with pytest.raises(VocabularyError, match="mask"):
        generate(make_model(plain_vocab()), plain_vocab(), "a", "image", grid=(2, 2), method="masked")
    v = make_vocab()
    with pytest.raises(ValueError, match="images"):
        generate(make_model(v), v, "a", "text", method="masked")
    with pytest.raises(ValueError, match="steps"):
        generate(make_model(v), v, "a", "image", grid=(2, 2), method="masked", steps=0)


def _shards(out, v: Vocabulary, vocab_dir, n: int, seed: int) -> str:
    """caption2image documents: text id d -> a 2 x 3 image whose codes are a fixed pattern of d."""
    rng = np.random.default_rng(seed)
    w = TokenShardWriter(out, vocab_hash=v.hash, vocab_size=v.size, task="caption2image",
                         meta={**shard_meta(v), "vocab_dir": str(vocab_dir)}, shard_tokens=10_000)
    for _ in range(n):
        d = int(rng.integers(0, 4))
        doc = Document([Text(codes=torch.tensor([40 + d])), Image(codes=torch.tensor(PATTERNS[d]).view(2, 3))])
        ids, spans = v.encode_with_spans(doc)
        w.add(ids, spans[0], TASKS["caption2image"])
        w.end_batch(1)
    w.close()
    return str(out)


PATTERNS = [[1, 2, 3, 4, 5, 6], [7, 7, 8, 8, 9, 9], [10, 20, 30, 10, 20, 30], [60, 50, 40, 30, 20, 10]]


def test_a_debug_model_trains_on_both_and_samples_in_seconds(tmp_path, capsys):
    from omnitok.train.lm import TrainConfig, train

    torch.set_num_threads(1)
    v = make_vocab()
    v.save(tmp_path / "vocab")
    data = _shards(tmp_path / "c2i" / "train", v, tmp_path / "vocab", 200, 0)
    _shards(tmp_path / "c2i" / "val", v, tmp_path / "vocab", 40, 1)
    model_cfg = dict(n_layer=2, dim=64, n_head=4, ffn_multiple_of=16, max_seq_len=64, vocab_size=v.size)
    tc = TrainConfig(seq_len=64, batch_size=8, max_steps=150, lr=3e-3, warmup_steps=10, log_every=25,
                     eval_every=150, eval_batches=2, save_every=0, cfg_dropout=0.1, masked={"c2i": 0.5})
    train(model_cfg, tc, data, tmp_path / "lm", progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "lm" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    assert val[-1]["val_loss"] < val[0]["val_loss"] / 3
    assert any(k.startswith("val_") and "masked_image" in k for k in val[-1])
    m = Transformer.from_pretrained(tmp_path / "lm" / "final")
    prompts = [Document([Text(codes=torch.tensor([40 + d]))]) for d in range(4)]
    forwards = {}
    for method, steps in (("masked", 3), ("cached", None)):  # one model: masked and next-token decoding
        out = generate(m, v, prompts, "image", grid=(2, 3), method=method, steps=steps, temperature=0,
                       cfg_scale=1.0, decode_data=False)
        got = [o.codes.flatten().tolist() for o in out.outputs]
        assert sum(g == p for g, p in zip(got, PATTERNS)) >= 3, (method, got)
        forwards[method] = out.stats["forwards"]
    assert forwards == {"masked": 3, "cached": 9}  # next-token: one forward per id (6 codes, 2 EORs, END)
    # the command line: --method masked --steps N, the grid the model recorded (2 x 3)
    from PIL import Image as PILImage

    from omnitok.cli import main

    png = tmp_path / "out.png"
    assert main(["generate", "two", "--to", "image", "--ckpt", str(tmp_path / "lm" / "final"), "--vocab",
                 str(tmp_path / "vocab"), "--method", "masked", "--steps", "3", "--seed", "0", "--out",
                 str(png)]) == 0
    assert PILImage.open(png).size == (12, 8) and "3 forwards" in capsys.readouterr().err
