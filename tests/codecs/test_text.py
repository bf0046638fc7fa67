"""The byte-level BPE text codec: exact round trips, folders, hash = sha256(tokenizer.json), the train command."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnitok.codecs.base import CheckpointError, load_codec
from omnitok.codecs.debug import debug_text_codec
from omnitok.codecs.text import TextCodec

CODEC = debug_text_codec()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_any_string_round_trips(text: str) -> None:
    codes = CODEC.encode(text)[0]
    assert codes.dtype.is_floating_point is False and codes.ndim == 1
    assert CODEC.decode([codes]) == [text]


def test_merges_compress_and_batch() -> None:
    texts = ["handwritten digit seven", "the quick brown fox", "😀 naïve"]
    codes = CODEC.encode(texts)
    assert len(codes[0]) < len("handwritten digit seven") // 2  # merges learned from the corpus
    assert CODEC.decode(codes) == texts
    assert max(int(c.max()) for c in codes) < CODEC.codebook_size
    with pytest.raises(ValueError, match="outside"):
        CODEC.decode([[CODEC.codebook_size + 5]])
    with pytest.raises(ValueError, match="expected str"):
        CODEC.encode([b"bytes"])


def test_folder_round_trip_and_hash(tmp_path) -> None:
    digest = CODEC.save_pretrained(tmp_path / "bpe")
    raw = (tmp_path / "bpe" / "tokenizer.json").read_bytes()
    assert digest == hashlib.sha256(raw).hexdigest() == CODEC.weights_sha256
    assert not (tmp_path / "bpe" / "model.safetensors").exists()
    loaded = load_codec(tmp_path / "bpe")
    assert isinstance(loaded, TextCodec) and loaded.weights_sha256 == digest
    assert TextCodec.from_pretrained(tmp_path / "bpe").encode("digit")[0].tolist() == CODEC.encode("digit")[0].tolist()
    (tmp_path / "bpe" / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_codec(tmp_path / "bpe")
    with pytest.raises(ValueError, match="vocab_size"):
        TextCodec(vocab_size=100)


def test_train_text_codec_command(tmp_path) -> None:
    import numpy as np

    from omnitok.cli import main
    from omnitok.data.shards import write_shard
    from omnitok.data.types import Example
    from omnitok.io.image import encode_png

    ds = tmp_path / "root" / "datasets"
    write_shard(ds / "text" / "train-000000.tar",
                [Example(f"fortunes-{i}", {"txt": f"fortune number {i}: carpe diem\n".encode()}, {}) for i in range(30)])
    png = encode_png(np.zeros((4, 4), np.uint8))
    write_shard(ds / "digits" / "train-000000.tar",
                [Example(f"mnist-{i}", {"png": png}, {"caption": "handwritten digit seven"}) for i in range(30)])
    out = tmp_path / "bpe"
    rc = main(["train", "text-codec", "--vocab-size", "300", "--out", str(out), "--root", str(tmp_path / "root"),
               "--datasets", "text,digits,emoji", "--no-progress"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["datasets"] == {"text": 30, "digits": 30}
    codec = load_codec(out)
    assert len(codec.encode("handwritten digit seven")[0]) <= 6
