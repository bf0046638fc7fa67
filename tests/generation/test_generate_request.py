"""GenerationRequest: generate()'s settings as one typed object, the same call as the keywords."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from gen_helpers import make_model, make_vocab

from omnitok.generation.generate import GenerationRequest, generate


def test_the_request_has_every_keyword_of_generate_with_its_default() -> None:
    params = inspect.signature(generate).parameters
    keywords = {n: p.default for n, p in params.items() if n not in ("model", "vocab", "prompt", "request")}
    fields = {f.name: f.default for f in dataclasses.fields(GenerationRequest)}
    assert fields == keywords  # a keyword added to generate() without its field (or the reverse) fails here


def test_a_request_generates_what_its_keywords_generate() -> None:
    vocab = make_vocab()
    model = make_model(vocab)
    kw = dict(grid=(3, 4), cfg_scale=2.0, temperature=0.9, top_k=20, seed=3, num_samples=2, decode_data=False)
    by_keywords = generate(model, vocab, "seven", "image", **kw)
    request = GenerationRequest("image").with_(**kw)
    by_request = generate(model, vocab, "seven", request=request)
    assert [t.tolist() for t in by_request.ids] == [t.tolist() for t in by_keywords.ids]
    other = generate(model, vocab, "seven", request=request.with_(seed=4))
    assert [t.tolist() for t in other.ids] != [t.tolist() for t in by_keywords.ids]  # its seed is used


def test_a_request_and_keywords_together_or_an_unknown_setting_are_refused() -> None:
    vocab = make_vocab()
    model = make_model(vocab)
    with pytest.raises(ValueError, match="not both"):
        generate(model, vocab, "seven", "text", request=GenerationRequest("text"))
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['tempo'\]"):
        GenerationRequest().with_(tempo=1.0)
