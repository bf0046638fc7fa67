"""Shared image ids: a sprite video codec's window rows take the image codec's ids (``share_image_ids``), the
rest of the clip the video range; encode / decode, the grammar, the parser's fast path, generation's step table,
the folder and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitok.codecs.global_motion import translate
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.sprite_motion import SpriteMotionCodec
from omnitok.generation.constraints import prompt_head_length, step_table
from omnitok.vocab import Document, Image, Video, Vocabulary, VocabularyError
from omnitok.vocab.layout import CodecEntry, IdLayout

IMAGE = {"in_channels": 3, "channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "z_channels": 8,
         "quantizer": "fsq", "quantizer_kwargs": {"levels": [5, 5, 5]}}  # f4: 16 px windows -> 4 x 4 codes


def _codecs(same_weights: bool = True) -> tuple[ImageCodec, SpriteMotionCodec]:
    torch.manual_seed(0)
    video = SpriteMotionCodec(IMAGE, window=12, image_size=16, frame_size=32, step=0.25, max_step=2.0).eval()
    image = ImageCodec(**IMAGE).eval()
    if same_weights:
        image.load_state_dict(video.image.state_dict())
    return image, video


def _vocab(share: bool = True) -> Vocabulary:
    image, video = _codecs()
    return Vocabulary.build({"image": image, "video": video}, max_height=16, max_width=16, max_frames=16,
                            share_image_ids=share)


def _clip() -> torch.Tensor:
    """(1, 3, 8, 32, 32): a 6 x 8 px bar at (9, 7) moving by (1, 0.5) px a frame."""
    first = torch.full((1, 3, 32, 32), -1.0)
    first[..., 7:15, 9:15] = 1.0
    first[..., 7:9, 9:11] = -1.0
    return torch.stack([translate(first, torch.tensor([[1.0, 0.5]]) * t, torch.full((1, 3), -1.0))
                        for t in range(8)], 2)


def _video_ids(vocab: Vocabulary, codes: torch.Tensor) -> np.ndarray:
    return vocab.encode(Document([Video(codes=codes)], bos=False, eos=False)).numpy()


def test_window_rows_take_the_image_ids_of_the_same_codes():
    vocab = _vocab()
    video = vocab.codecs["video"]
    codes = video.encode(_clip())[0]  # (1, 6, 4, 1): 4 rows of window codes, then the corner and 7 steps
    ids = _video_ids(vocab, codes)
    body = ids[4:-2].reshape(6, 5)[:, :4]  # rows without their EOR (EOF and END follow)
    image_ids = vocab.encode(Document([Image(codes=codes[0, :4])], bos=False, eos=False)).numpy()
    # the window is a picture: the same ids as the image codec's image of those codes
    assert np.array_equal(body[:4], image_ids[3:-1].reshape(4, 5)[:, :4])
    lo, hi = vocab.id_range("video")
    assert np.array_equal(body[4:], codes[0, 4:, :, 0].numpy() + lo) and body[4:].max() < hi
    assert torch.equal(vocab.decode(ids).segments[0].codes, codes)


def test_without_sharing_every_code_is_a_video_id_and_the_layout_hashes_as_before():
    shared, plain = _vocab(True), _vocab(False)
    codes = shared.codecs["video"].encode(_clip())[0]
    ids = _video_ids(plain, codes)
    lo, _ = plain.id_range("video")
    assert np.array_equal(ids[4:-2].reshape(6, 5)[:, :4], codes[..., 0].numpy()[0] + lo)
    assert "image_rows" not in plain.to_dict()["codecs"]["video"]  # older vocab.json files keep their hash
    assert shared.to_dict()["codecs"]["video"]["image_rows"] == 4 and shared.hash != plain.hash


def test_the_grammar_and_the_parser_ask_for_image_ids_in_the_window_rows():
    vocab = _vocab()
    codes = vocab.codecs["video"].encode(_clip())[0]
    ids = _video_ids(vocab, codes).tolist()
    image, video = vocab.id_range("image"), vocab.id_range("video")
    g = vocab.grammar()
    seen = []
    sp = vocab.specials
    for k, i in enumerate(ids):
        if k >= 4 and g.modality == "video" and g.allowed_ranges() not in (((sp.eor, sp.eor + 1),), ((sp.eof, sp.eof + 1),)):
            seen.append(g.allowed_ranges())
        g.step(i)
    # 4 x 4 window codes, then 2 x 4 cells, END last
    assert seen[:16] == [(image,)] * 16 and seen[16:24] == [(video,)] * 8
    bad = list(ids)
    bad[4] = video[0] + int(codes[0, 0, 0, 0])  # a window code given a video id
    with pytest.raises(VocabularyError, match="IMAGE code"):
        vocab.decode(bad)
    bad = list(ids)
    bad[4 + 4 * 5] = image[0]  # the corner given an image id
    with pytest.raises(VocabularyError, match="VIDEO code"):
        vocab.decode(bad)
    g = vocab.grammar()  # run_bounds (the parser's fast path) agrees with the step-by-step ranges
    for i in ids[:4]:
        g.step(i)
    lo, hi = g.run_bounds(len(ids) - 5)
    assert len(lo) == len(ids) - 5  # the whole body to its EOF, END excluded
    for k, i in enumerate(ids[4:-1]):
        assert [(int(lo[k]), int(hi[k]))] == list(g.allowed_ranges())
        g.step(i)


def test_generation_constrains_window_rows_to_image_ids():
    vocab = _vocab()
    table = step_table(vocab, "video", grid=(1, 6, 4))
    steps = [table.ranges[int(k)] for k in table.index]
    image, video = vocab.id_range("image"), vocab.id_range("video")
    eor = (vocab.specials.eor, vocab.specials.eor + 1)
    eof = (vocab.specials.eof, vocab.specials.eof + 1)
    assert len(steps) == 6 * 5 + 2 and steps[-2] == (eof,) and steps[-1] == ((vocab.end_id("video"), vocab.end_id("video") + 1),)
    for row in range(6):
        assert steps[row * 5 : row * 5 + 4] == [(image if row < 4 else video,)] * 4 and steps[row * 5 + 4] == (eor,)
    assert prompt_head_length("video") == 4


def test_the_folder_keeps_the_shared_rows(tmp_path):
    vocab = _vocab()
    vocab.save(tmp_path / "v")
    again = Vocabulary.load(tmp_path / "v")
    assert again.entries["video"].image_rows == 4 and again.hash == vocab.hash
    codes = vocab.codecs["video"].encode(_clip())[0]
    assert np.array_equal(_video_ids(again, codes), _video_ids(vocab, codes))


def test_sharing_needs_the_image_codecs_own_weights_and_a_sprite_codec():
    image, video = _codecs(same_weights=False)
    with pytest.raises(ValueError, match="other weights"):
        Vocabulary.build({"image": image, "video": video}, max_frames=16, share_image_ids=True)
    with pytest.raises(ValueError, match="needs an image codec"):
        Vocabulary.build({"video": video}, max_frames=16, share_image_ids=True)
    e = CodecEntry("image", "i", "ImageCodec", "x", codebook_size=8, num_codebooks=1, offset=20, image_rows=2)
    with pytest.raises(ValueError, match="image_rows=2"):
        IdLayout({"image": e})
