"""Bad generation requests are refused before any allocation, with a message naming the argument;
a model's recorded generation_config supplies the defaults."""

from __future__ import annotations

import pytest
import torch
from gen_helpers import make_model, make_vocab

from omnitok.generation.generate import check_grid, generate


@pytest.fixture(scope="module")
def mv():
    vocab = make_vocab()
    return make_model(vocab), vocab


@pytest.mark.parametrize("grid, match", [
    ((2.5, 2), "whole number"),
    ((0, 4), "whole number >= 1"),
    ((True, 2), "whole number"),
    ((3,), r"an image grid is \(height, width\)"),
    ("4x4", "expected an image grid"),
    ((10**6, 10**6), "more than the vocabulary's largest"),
])
def test_bad_image_grids(mv, grid, match):
    model, vocab = mv
    with pytest.raises(ValueError, match=match):
        generate(model, vocab, "x", "image", grid=grid)


def test_huge_audio_grid_is_refused_at_once(mv, monkeypatch):
    import sys

    gen_mod = sys.modules["omnitok.generation.generate"]  # the module (the package exports the function by name)

    def no_table(*a, **k):
        raise AssertionError("a step table was built for a grid that should have been refused")

    monkeypatch.setattr(gen_mod, "step_table", no_table)  # refused before a table of 10**6 steps is built
    model, vocab = mv
    with pytest.raises(ValueError, match="more than the model's context"):
        generate(model, vocab, "x", "audio", grid=(10**6,))


@pytest.mark.parametrize("kw, match", [
    ({"cfg_scale": float("nan")}, "cfg_scale must be a finite number"),
    ({"cfg_scale": float("inf")}, "cfg_scale must be a finite number"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": -1}, "top_k must be >= 0"),
    ({"num_samples": 0}, "num_samples must be a whole number >= 1"),
    ({"num_samples": 2.0}, "num_samples must be a whole number"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a whole number >= 1"),
])
def test_bad_sampling_values(mv, kw, match):
    model, vocab = mv
    with pytest.raises(ValueError, match=match):
        generate(model, vocab, "x", "image", grid=(2, 2), **kw)


def test_lone_surrogate_prompt_is_a_value_error(mv):
    model, vocab = mv
    if "text" not in vocab.codecs:
        pytest.skip("debug vocabulary without a text codec")
    with pytest.raises(ValueError, match="not valid Unicode text"):
        generate(model, vocab, "seven \ud800", "image", grid=(2, 2))


def test_check_grid_bounds(mv):
    _, vocab = mv
    assert check_grid(vocab, "video", (2, 2, 3), 256) == (2, 2, 3)
    with pytest.raises(ValueError, match="text takes no grid"):
        check_grid(vocab, "text", (1,), 256)


def test_recorded_generation_config_is_the_default(mv):
    """A model that records grids and sampling generates with them when the caller gives none."""
    model, vocab = mv
    plain = generate(model, vocab, "x", "image", seed=0, decode_data=False)
    model.generation_config = {"grids": {"image": [2, 3]}, "sampling": {"image": {"temperature": 0.0}}}
    try:
        out = generate(model, vocab, "x", "image", seed=0, decode_data=False)
        again = generate(model, vocab, "x", "image", seed=1, decode_data=False)
        explicit = generate(model, vocab, "x", "image", grid=(3, 4), seed=0, decode_data=False)
    finally:
        del model.generation_config
    assert tuple(out.outputs[0].codes.shape[:2]) == (2, 3)
    assert torch.equal(out.ids[0], again.ids[0])  # temperature 0 recorded: greedy, the seed does not matter
    assert tuple(explicit.outputs[0].codes.shape[:2]) == (3, 4)  # an explicit grid wins
    assert tuple(plain.outputs[0].codes.shape[:2]) != (2, 3)


# ----- fuzzed: whatever a caller passes as a grid, the answer is a valid grid or a ValueError ----------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ANY = st.one_of(st.integers(-3, 10**7), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3),
                 st.none())


@settings(max_examples=150, deadline=None)
@given(produce=st.sampled_from(["image", "video", "audio", "text"]),
       grid=st.one_of(st.lists(_ANY, max_size=4).map(tuple), _ANY))
def test_check_grid_never_fails_otherwise(mv, produce, grid):
    _, vocab = mv
    try:
        out = check_grid(vocab, produce, grid, 256)
    except ValueError:
        return
    assert all(isinstance(g, int) and g >= 1 for g in out) and len(out) == {"image": 2, "video": 3, "audio": 1}[produce]


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="0123456789xX ab-.", max_size=12), produce=st.sampled_from(["image", "video", "audio"]))
def test_parse_grid_never_fails_otherwise(text, produce):
    from omnitok.recipes.generate import parse_grid

    try:
        out = parse_grid(text, produce)
    except ValueError as e:
        assert "--grid" in str(e)
        return
    assert all(isinstance(g, int) for g in out)
