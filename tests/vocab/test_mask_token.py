"""<|mask|>: appended after the size tokens, opt-in; a vocabulary saved without it loads with the same hash."""

from __future__ import annotations

import json

import pytest
import torch

from omnitok.data.debug import debug_vocabulary
from omnitok.vocab import Document, Image, Text, Vocabulary
from omnitok.vocab.errors import VocabularyError
from omnitok.vocab.special import SpecialTokens


def test_mask_id_is_appended_after_the_size_tokens():
    plain, masked = SpecialTokens(8, 8, 4), SpecialTokens(8, 8, 4, with_mask=True)
    assert plain.mask is None and masked.mask == plain.size and masked.size == plain.size + 1
    assert masked.names()[:-1] == plain.names() and masked.names()[-1] == "<|mask|>"
    for name in ("pad", "bos", "eos", "uncond", "eor", "eof", "height_base", "width_base", "frames_base"):
        assert getattr(masked, name) == getattr(plain, name)


def test_masked_vocabulary_round_trips_and_old_files_load(tmp_path):
    old = debug_vocabulary()
    with pytest.raises(VocabularyError, match="mask"):
        _ = old.mask_id
    old.save(tmp_path / "old")
    info = json.loads((tmp_path / "old" / "vocab.json").read_text())
    assert "with_mask" not in info["specials"]  # the file (and its hash) of a vocabulary without <|mask|>
    assert Vocabulary.load(tmp_path / "old", load_codecs=False).hash == old.hash

    new = debug_vocabulary(with_mask=True)
    assert new.size == old.size + 1 and new.hash != old.hash
    assert new.token_name(new.mask_id) == "<|mask|>" and int(new.modality_of([new.mask_id])[0]) == 0
    new.save(tmp_path / "new")
    back = Vocabulary.load(tmp_path / "new")
    assert back.mask_id == new.mask_id and back.hash == new.hash
    doc = Document([Text(codes=torch.tensor([1, 2, 3])), Image(codes=torch.randint(0, 64, (2, 3, 1)))])
    ids = back.encode(doc)
    assert new.mask_id not in ids.tolist()
    assert torch.equal(back.encode(back.decode(ids)), ids)
