"""``omnitok tokenize`` end to end on small digits / emoji / speech datasets written as real tar shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitok.cli import main
from omnitok.codecs.debug import DebugAudioCodec, DebugImageCodec, DebugVideoCodec, debug_text_codec
from omnitok.data.shards import write_shard
from omnitok.data.token_shards import TokenShards
from omnitok.data.tokenize import CodeCache, build_document, codec_input_size, parse_codecs, pick_partner
from omnitok.data.types import Example
from omnitok.io.image import encode_png
from omnitok.vocab import TASKS, Audio, Image, Text, Vocabulary

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _wav(seconds: float, seed: int) -> bytes:
    from omnitok.io.audio import write_flac

    rng = np.random.default_rng(seed)
    return write_flac((rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32), 16000)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("omnitok")
    rng = np.random.default_rng(0)
    ds = root / "datasets"
    digits = [Example(f"mnist-{i % 10}-{i:04d}", {"png": encode_png(rng.integers(0, 255, (16, 16), dtype=np.uint8))},
                      {"caption": f"handwritten digit {WORDS[i % 10]}", "label": i % 10}) for i in range(24)]
    write_shard(ds / "digits" / "train-000000.tar", digits)
    emoji = [Example(f"emoji-{i:03d}", {"png": encode_png(rng.integers(0, 255, (12, 20, 3), dtype=np.uint8))},
                     {"caption": f"a 3d emoji number {i} 😀", "label": "smileys"}) for i in range(10)]
    write_shard(ds / "emoji" / "train-000000.tar", emoji)
    speech = [Example(f"speech-digit-{i:06d}", {"flac": _wav(0.05 + 0.01 * i, i)},
                      {"transcript": WORDS[i % 10], "kind": "digits", "digits": str(i % 10)}) for i in range(20)]
    speech.append(Example("speech-digits-000001", {"flac": _wav(0.1, 99)},
                          {"transcript": "one two", "kind": "digits", "digits": "12"}))
    write_shard(ds / "speech" / "train-000000.tar", speech)
    from omnitok.io.video import write_mp4

    clips = [Example(f"video-{i:03d}", {"mp4": write_mp4(rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8), 8.0)},
                     {"caption": f"the digit {i} moving left"}) for i in range(3)]
    write_shard(ds / "video" / "train-000000.tar", clips)
    return root


@pytest.fixture(scope="module")
def codec_dirs(tmp_path_factory):
    d = tmp_path_factory.mktemp("codecs")
    debug_text_codec().save_pretrained(d / "bpe")
    DebugImageCodec(patch=4, codebook_size=64).save_pretrained(d / "img")
    DebugAudioCodec(hop=160, codebook_size=32, num_codebooks=4).save_pretrained(d / "aud")
    return {"text": d / "bpe", "image": d / "img", "audio": d / "aud"}


def _cli(root, codec_dirs, vocab_dir, data, out, *extra) -> int:
    codecs = ",".join(f"{m}={p}" for m, p in codec_dirs.items())
    return main(["tokenize", "--vocab", str(vocab_dir), "--codecs", codecs, "--data", data, "--out", str(out),
                 "--root", str(root), "--batch-size", "8", "--no-progress", "--shard-tokens", "2000", *extra])


def test_tokenize_digits_and_emoji_end_to_end(root, codec_dirs, tmp_path) -> None:
    vdir = tmp_path / "vocab"
    assert _cli(root, codec_dirs, vdir, "digits:caption2image", tmp_path / "d-c2i") == 0
    assert (vdir / "vocab.json").exists()  # built from --codecs on the first call
    vocab = Vocabulary.load(vdir)
    assert _cli(root, codec_dirs, vdir, "emoji:image2caption", tmp_path / "e-i2c") == 0
    assert _cli(root, codec_dirs, vdir, "emoji:image", tmp_path / "e-img", "--limit", "4") == 0

    d = TokenShards(tmp_path / "d-c2i")
    assert len(d) == 24 and d.vocab_hash == vocab.hash and d.meta["task"] == "caption2image"
    for i in range(len(d)):
        ids, (a, b), task = d.document(i)
        doc = vocab.decode(ids, data=True)
        text, img = doc.segments
        assert isinstance(text, Text) and isinstance(img, Image) and task == TASKS["caption2image"]
        assert text.text.startswith("handwritten digit ") and img.codes.shape == (4, 4, 1)
        assert vocab.decode(ids[a:b], data=True).segments[0].text == text.text  # the condition span is the caption
    e = TokenShards(tmp_path / "e-i2c")
    img, text = vocab.decode(e[0], data=True).segments
    assert img.codes.shape == (3, 5, 1) and "😀" in text.text
    assert len(TokenShards(tmp_path / "e-img")) == 4
    # a second run finds the finished part and does nothing
    assert _cli(root, codec_dirs, vdir, "digits:caption2image", tmp_path / "d-c2i") == 0
    assert len(TokenShards(tmp_path / "d-c2i")) == 24


def test_image_speech_pairs_by_digit_label(root, codec_dirs, tmp_path) -> None:
    vdir = tmp_path / "vocab"
    assert _cli(root, codec_dirs, vdir, "digits:image2speech", tmp_path / "i2s") == 0
    assert _cli(root, codec_dirs, vdir, "speech:speech2transcript", tmp_path / "s2t") == 0
    vocab = Vocabulary.load(vdir)
    ts = TokenShards(tmp_path / "i2s")
    assert len(ts) == 24
    for i in range(len(ts)):
        img, aud = vocab.decode(ts[i]).segments
        assert isinstance(img, Image) and isinstance(aud, Audio) and aud.codes.shape[1] == 4
    assert _cli(root, codec_dirs, vdir, "digits:interleaved", tmp_path / "inter", "--limit", "5") == 0
    inter = TokenShards(tmp_path / "inter")
    kinds = [type(seg).__name__ for seg in vocab.decode(inter[0]).segments]
    assert kinds == ["Text", "Image", "Audio", "Text"] and inter.document(0)[1] == (0, 0)
    s2t = TokenShards(tmp_path / "s2t")
    assert len(s2t) == 21 and isinstance(vocab.decode(s2t[0]).segments[1], Text)
    spoken = {d: [Example(f"s{d}{j}", {}, {"digits": str(d)}) for j in range(3)] for d in range(10)}
    ex = Example("mnist-7-0001", {}, {"label": 7})
    assert pick_partner(ex, spoken) is pick_partner(ex, spoken) and pick_partner(ex, spoken).meta["digits"] == "7"


def test_documents_and_arguments() -> None:
    ex = Example("fortunes-001", {"txt": b"the quick brown fox jumps over the lazy dog"}, {})
    doc, n_cond = build_document("continuation", ex)
    assert n_cond == 1 and doc.segments[0].text + doc.segments[1].text == ex.files["txt"].decode()
    with pytest.raises(ValueError, match="unknown task"):
        build_document("smell2taste", ex)
    with pytest.raises(ValueError, match="needs a spoken-digit partner"):
        build_document("image2speech", Example("k", {"png": encode_png(np.zeros((4, 4), np.uint8))}, {"label": 1}))
    assert parse_codecs("text=a, image=b") == {"text": "a", "image": "b"}
    with pytest.raises(ValueError, match="modality=DIR"):
        parse_codecs("text")
    assert torch.is_tensor(build_document("image", Example("k", {"png": encode_png(np.zeros((4, 4), np.uint8))},
                                                           {}))[0].segments[0].data)


def _first_video_document(root, codec_dirs, tmp_path, task: str):  # noqa: ANN202
    """Tokenise ``video:<task>`` with a debug video codec (4 frames of 8 px, 2 frames a code) -> the first
    document, decoded with its data."""
    DebugVideoCodec(patch=4, frames_per_code=2).save_pretrained(
        tmp_path / "vid", extra={"preset": {"data": {"size": 8, "frames": 4}}})
    dirs = {**codec_dirs, "video": tmp_path / "vid"}
    assert _cli(root, dirs, tmp_path / "vocab", f"video:{task}", tmp_path / task) == 0
    vocab = Vocabulary.load(tmp_path / "vocab")
    return vocab.decode(TokenShards(tmp_path / task)[0], data=True)


def test_tokenize_video_with_the_codec_frames(root, codec_dirs, tmp_path) -> None:
    text, video = _first_video_document(root, codec_dirs, tmp_path, "caption2video").segments
    assert text.text == "the digit 0 moving left"
    assert video.codes.shape == (2, 2, 2, 1) and video.data.shape == (3, 4, 8, 8)  # 4 frames of 8 px kept


def test_video2caption_documents(root, codec_dirs, tmp_path) -> None:
    """video -> caption: the clip is the condition, its caption the target (a shard of the video2caption task)."""
    video, text = _first_video_document(root, codec_dirs, tmp_path, "video2caption").segments
    assert video.codes.shape == (2, 2, 2, 1) and text.text == "the digit 0 moving left"


def test_video_layout(root) -> None:
    """Every video codec (debug ones too) takes (C, T, H, W): the clip's frames in that layout."""
    from omnitok.data.dataset import ShardDataset
    from omnitok.io.video import decode_video

    ex = next(iter(ShardDataset("video", "train", root=root, decode=False)))
    clip = build_document("video", ex, video_size=8, video_frames=5)[0].segments[0].data
    frames = decode_video(ex.files["mp4"], 8, 5, name=ex.key)  # (T, 3, H, W)
    assert clip.shape == (3, 5, 8, 8) and torch.equal(clip, frames.transpose(0, 1))


def test_codec_input_size_from_its_preset(tmp_path) -> None:
    DebugImageCodec().save_pretrained(tmp_path / "img", extra={"preset": {"data": {"size": 48}}})
    assert codec_input_size(tmp_path / "v", {"image": str(tmp_path / "img")}, "image") == 48
    assert codec_input_size(tmp_path / "v", {}, "video") is None


def test_cli_errors(root, codec_dirs, tmp_path, cli_error) -> None:
    with pytest.raises(SystemExit, match="supports tasks"):
        _cli(root, codec_dirs, tmp_path / "v", "emoji:caption2video", tmp_path / "x")
    cli_error(["tokenize", "--vocab", str(tmp_path / "none"), "--data", "digits", "--out", str(tmp_path / "o"),
               "--root", str(root), "--no-progress"], "does not exist yet")


def test_each_rank_tokenises_its_own_part(root, codec_dirs, tmp_path, monkeypatch) -> None:
    vdir, out = tmp_path / "vocab", tmp_path / "ranks"
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert _cli(root, codec_dirs, vdir, "digits:image2caption", out) == 0
        if rank == 0:
            with pytest.raises(ValueError, match="not finished"):
                TokenShards(out)  # rank 1 has not written its part yet
    ts = TokenShards(out)
    assert len(ts) == 24 and len(ts.parts) == 2 and {p["documents"] for p in ts.parts} == {12}
    vocab = Vocabulary.load(vdir)
    captions = sorted(vocab.decode(ts[i], data=True).segments[1].text for i in range(24))
    assert captions == sorted(f"handwritten digit {WORDS[i % 10]}" for i in range(24))


def test_code_cache_encodes_shared_media_once(root, codec_dirs, tmp_path) -> None:
    from omnitok.data.dataset import ShardDataset
    from omnitok.data.tokenize import load_or_build_vocab, tokenize_dataset

    codecs = {m: str(p) for m, p in codec_dirs.items()}
    plain = load_or_build_vocab(tmp_path / "vocab", codecs)
    cached = Vocabulary.load(tmp_path / "vocab")
    cache = CodeCache().install(cached)
    wrapped = cached.codecs["image"].encode
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    ref = plain.codecs["image"].encode(x)
    assert torch.equal(cached.codecs["image"].encode(x), ref) and (cache.hits, cache.misses) == (0, 5)
    assert torch.equal(cached.codecs["image"].encode(x[[3, 1]]), ref[[3, 1]]) and cache.hits == 2
    mixed = torch.cat([x[:2], torch.rand(1, 3, 16, 16)])
    assert torch.equal(cached.codecs["image"].encode(mixed)[:2], ref[:2]) and cache.misses == 6
    cache.install(cached)
    assert cached.codecs["image"].encode is wrapped  # installing twice wraps once
    # the paired tasks give the same documents with and without the cache, and the second encodes nothing new
    ds = lambda: ShardDataset("digits", "train", root=root, decode=False)  # noqa: E731
    for task, out in (("caption2image", "a"), ("image2caption", "b")):
        before = cache.misses
        tokenize_dataset(cached, ds(), tmp_path / f"c-{out}", task, image_size=16, progress=False)
        tokenize_dataset(plain, ds(), tmp_path / f"p-{out}", task, image_size=16, progress=False)
        a, b = TokenShards(tmp_path / f"c-{out}"), TokenShards(tmp_path / f"p-{out}")
        assert len(a) == len(b) == 24 and all(np.array_equal(a[i], b[i]) for i in range(24))
        if task == "image2caption":
            assert cache.misses == before  # every image came from the cache


def test_views_write_translated_copies_of_each_image_document(root, codec_dirs, tmp_path, capsys) -> None:
    vdir = tmp_path / "vocab"
    assert _cli(root, codec_dirs, vdir, "digits:image2caption", tmp_path / "plain") == 0
    assert _cli(root, codec_dirs, vdir, "digits:image2caption", tmp_path / "views", "--views", "3",
                "--shift", "2") == 0
    vocab = Vocabulary.load(vdir)
    plain, views = TokenShards(tmp_path / "plain"), TokenShards(tmp_path / "views")
    assert len(views) == 3 * len(plain) == 72
    differ = 0
    for i in range(len(plain)):
        first = vocab.decode(views[3 * i], data=True).segments
        assert np.array_equal(views[3 * i], plain[i])  # view 0 is the image itself
        for j in (1, 2):
            img, text = vocab.decode(views[3 * i + j], data=True).segments
            assert text.text == first[1].text and img.codes.shape == first[0].codes.shape
            differ += int(not torch.equal(img.codes, first[0].codes))
    assert differ > 24  # translated images encode to other codes
    assert _cli(root, codec_dirs, vdir, "digits:image2caption", tmp_path / "bad", "--views", "2") == 2
    assert "shift >= 0 (> 0 when views > 1)" in capsys.readouterr().err


def test_code_cache_remembers_the_clips_of_encode_many() -> None:
    from types import SimpleNamespace

    from omnitok.codecs.audio import AudioCodec

    torch.manual_seed(0)
    codec = AudioCodec(dim=8, enc_channels=2, dec_channels=2, codebook_size=16, num_codebooks=2,
                       quantizer_kwargs={"kmeans_init": False}).eval()
    clips = [torch.rand(1, n) * 2 - 1 for n in (700, 320, 1500)]
    ref = [codec.encode(c[None])[0] for c in clips]
    cache = CodeCache().install(SimpleNamespace(codecs={"audio": codec}))  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(codec.encode_many(clips), ref)) and cache.misses == 3
    again = codec.encode_many([clips[2], torch.rand(1, 400), clips[0]])
    assert torch.equal(again[0], ref[2]) and torch.equal(again[2], ref[0])
    assert (cache.hits, cache.misses) == (2, 4)
    assert torch.equal(codec.encode(clips[1][None])[0], ref[1]) and cache.hits == 3  # one store for both paths
