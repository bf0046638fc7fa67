"""AudioCodec: shapes, exact chunked / streaming encoding, n_q choice, save/load, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from omnitok.codecs.audio import AudioCodec
from omnitok.codecs.base import CodecOutput, load_codec
from omnitok.nn.seanet import SEANetEncoder, receptive_field

HOP = 320


def tiny_codec(**kw) -> AudioCodec:
    torch.manual_seed(0)
    args = dict(sample_rate=16000, ratios=(2, 4, 5, 8), dim=16, enc_channels=4, dec_channels=4,
                bottleneck_residual=1, codebook_size=64, num_codebooks=4, quantizer_dropout=0.5,
                quantizer_kwargs={"kmeans_init": False})
    args.update(kw)
    return AudioCodec(**args).eval()


@pytest.fixture(scope="module")
def codec() -> AudioCodec:
    return tiny_codec()


def speechy(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(t) / 16000
    tone = torch.sin(2 * math.pi * 180 * n * (1 + 0.1 * torch.sin(2 * math.pi * 3 * n)))
    return (0.5 * tone + 0.1 * torch.randn(b, 1, t, generator=g)).clamp(-1, 1)


def test_shapes_and_bitrate(codec: AudioCodec) -> None:
    x = speechy(2, 1000)
    codes = codec.encode(x)
    assert codes.shape == (2, 4, 4) and codes.dtype == torch.int64  # ceil(1000 / 320) = 4 frames
    assert int(codes.min()) >= 0 and int(codes.max()) < 64
    y = codec.decode(codes)
    assert y.shape == (2, 1, 4 * HOP) and torch.isfinite(y).all() and y.abs().max() <= 1
    assert codec.code_grid((1, 1000)) == (4,)
    assert codec.frame_rate == 50
    assert codec.bitrate(4) == 4 * 6 * 50 and codec.bitrate(1) == 300
    default = AudioCodec(enc_channels=2, dec_channels=2, quantizer_kwargs={"kmeans_init": False})
    assert default.hop == 320 and default.num_codebooks == 8 and default.codebook_size == 1024
    assert default.bitrate(4) == 2000.0  # 4 * log2(1024) * 50 = 2 kbps


def test_encoder_is_causal() -> None:
    enc = SEANetEncoder(dim=8, channels=4, ratios=(2, 4, 5, 8), bottleneck_residual=1).eval()
    x = torch.randn(1, 1, 20 * HOP)
    y = x.clone()
    y[..., 10 * HOP :] += 1.0  # change the future from frame 10 on
    with torch.no_grad():
        zx, zy = enc(x), enc(y)
    assert torch.equal(zx[..., :10], zy[..., :10])
    assert not torch.equal(zx[..., 10:], zy[..., 10:])
    assert enc.receptive_field == receptive_field(enc.net) > HOP


@pytest.mark.parametrize(("batch", "chunks"), [(1, (1, 5, 24, 50)), (2, (3, 7))])
def test_chunked_equals_whole_bit_for_bit(codec: AudioCodec, batch: int, chunks: tuple[int, ...]) -> None:
    x = speechy(batch, 24 * HOP, seed=batch)
    whole = codec.encode(x)
    assert codec.context_frames >= 1
    for chunk in chunks:
        assert torch.equal(codec.encode_chunked(x, chunk), whole), f"chunk of {chunk} frames"


def test_float32_encoder_matches_float64() -> None:
    """encode_dtype float32 (the quickstart's tokenisation) gives the float64 codes on whole clips; latents
    agree to float32 rounding; any other dtype is refused."""
    codec = tiny_codec()
    x = speechy(2, 40 * HOP, seed=3)
    with torch.no_grad():
        z64, c64 = codec.encode_latents(codec.prepare(x)), codec.encode(x)
        codec.encode_dtype = torch.float32
        z32, c32 = codec.encode_latents(codec.prepare(x)), codec.encode(x)
    assert z32.dtype == z64.dtype == torch.float32
    assert not torch.equal(z32, z64) and torch.allclose(z32, z64, atol=1e-5)  # computed in another dtype
    assert torch.equal(c32, c64)
    codec.encode_dtype = torch.float16
    with pytest.raises(ValueError, match="encode_dtype"):
        codec.encode(x)


def test_chunks_without_context_differ(codec: AudioCodec) -> None:
    """The left context is what makes chunking exact: without it the codes change (the test can fail)."""
    x = speechy(1, 37 * HOP, seed=3)
    whole = codec.encode(x)
    saved = codec.context_frames
    try:
        codec.context_frames = 0
        assert not torch.equal(codec.encode_chunked(x, 3), whole)
    finally:
        codec.context_frames = saved


def test_stream_equals_whole(codec: AudioCodec) -> None:
    x = speechy(1, 20 * HOP + 77, seed=4)
    whole = codec.encode(x)  # the last partial frame is zero-padded
    cuts = [0, 5, 400, 401, 1900, 3000, 6000, x.shape[-1]]
    pieces = [x[..., a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    streamed = torch.cat(list(codec.encode_stream(pieces)), dim=1)
    assert torch.equal(streamed, whole)


def test_n_q_choice(codec: AudioCodec) -> None:
    x = speechy(1, 10 * HOP)
    full = codec.encode(x)
    for n in (1, 2, 3):
        part = codec.encode(x, n_q=n)
        assert torch.equal(part, full[..., :n])
        assert codec.decode(part).shape == (1, 1, 10 * HOP)
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="n_q"):
            codec.encode(x, n_q=bad)


def test_quantizer_dropout_in_training() -> None:
    codec = tiny_codec(quantizer_dropout=1.0).train()
    torch.manual_seed(1)
    active = {int(codec(speechy(2, 4 * HOP)).metrics["active_quantizers"]) for _ in range(6)}
    assert len(active) > 1 and active <= {1, 2, 3, 4}
    out = codec(speechy(2, 4 * HOP))
    assert isinstance(out, CodecOutput) and out.codes.shape == (2, 4, 4) and out.recon.shape == (2, 1, 4 * HOP)


def test_save_load_roundtrip(codec: AudioCodec, tmp_path) -> None:
    x = speechy(1, 6 * HOP)
    codec.save_pretrained(tmp_path / "c")
    loaded = load_codec(tmp_path / "c")
    assert isinstance(loaded, AudioCodec) and loaded.config == codec.config
    codes = codec.encode(x)
    assert torch.equal(loaded.encode(x), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_bad_inputs(codec: AudioCodec, tmp_path) -> None:
    with pytest.raises(ValueError, match="empty audio"):
        codec.encode(torch.zeros(1, 1, 0))
    x = speechy(1, 4 * HOP)
    x[0, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(x)
    with pytest.raises(ValueError, match="shaped"):
        codec.encode(torch.zeros(100))
    with pytest.raises(ValueError, match="floating point"):
        codec.encode(torch.zeros(1, 1, 100, dtype=torch.int16))
    with pytest.raises(ValueError, match="torch.Tensor"):
        codec.encode(np.zeros((1, 1, 100), dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frames"):
        codec.decode(torch.zeros(1, 0, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="codes must lie"):
        codec.decode(torch.full((1, 3, 4), 64, dtype=torch.long))


def test_stereo_is_downmixed(codec: AudioCodec) -> None:
    left, right = speechy(1, 5 * HOP, seed=1), speechy(1, 5 * HOP, seed=2)
    with pytest.warns(UserWarning, match="downmixing 2 channels"):
        codes = codec.encode(torch.cat([left, right], dim=1))
    assert torch.equal(codes, codec.encode((left + right) / 2))


def test_wrong_sample_rate_is_resampled(codec: AudioCodec) -> None:
    x = speechy(1, 8000)  # 1 s at 8 kHz
    with pytest.warns(UserWarning, match="resampling from 8000 Hz"):
        codes = codec.encode(x, sample_rate=8000)
    assert codes.shape[1] == 50  # 1 s at 16 kHz = 50 frames
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.encode(speechy(1, 1600), sample_rate=16000)  # the right rate: no warning


def test_files_and_truncated_flac(codec: AudioCodec, tmp_path) -> None:
    from omnitok.io.audio import write_flac, write_wav

    audio = speechy(1, 24000).reshape(-1).numpy()
    (tmp_path / "a.flac").write_bytes(write_flac(audio, 16000))
    (tmp_path / "b.wav").write_bytes(write_wav(np.stack([audio, audio], 1), 16000))  # stereo file
    c1 = codec.encode_file(tmp_path / "a.flac")
    assert c1.shape == (1, 75, 4)
    assert codec.encode_file(tmp_path / "b.wav").shape == (1, 75, 4)
    (tmp_path / "r.wav").write_bytes(write_wav(audio[::2], 8000))
    with pytest.warns(UserWarning, match="resampling"):
        assert codec.encode_file(tmp_path / "r.wav").shape[1] == 75
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.flac").write_bytes(b"")
    for name in ("cut.flac", "empty.flac"):
        with pytest.raises(ValueError, match=name):
            codec.encode_file(tmp_path / name)


def test_istft_decoder_shapes() -> None:
    codec = tiny_codec(decoder="istft", istft_ratios=(4,), istft_channels=16)
    codes = codec.encode(speechy(2, 7 * HOP))
    y = codec.decode(codes)
    assert y.shape == (2, 1, 7 * HOP) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="decoder must be"):
        tiny_codec(decoder="mdct")
    with pytest.raises(ValueError, match="must divide the hop"):
        tiny_codec(decoder="istft", istft_ratios=(3,))


def test_encode_many_equals_encode_of_each_clip(codec: AudioCodec) -> None:
    lengths = [1000, 320, 7 * HOP, 5000, 1, 2 * HOP + 1, 4000]  # ragged, some not whole frames
    clips = [speechy(1, n, seed=i)[0] for i, n in enumerate(lengths)]  # each (1, T)
    for batch_size in (1, 3, 16):
        many = codec.encode_many(clips, batch_size=batch_size)
        for clip, codes in zip(clips, many):
            assert torch.equal(codes, codec.encode(clip[None])[0])  # float64 encoder: bit for bit
    assert [c.shape[0] for c in many] == [math.ceil(n / HOP) for n in lengths]
    assert codec.encode_many(clips[:2], n_q=2)[0].shape == (4, 2)
    assert codec.encode_many([]) == []


def test_encode_many_names_bad_clips(codec: AudioCodec) -> None:
    with pytest.raises(ValueError, match=r"clip 1 must be a \(channels, T\) tensor"):
        codec.encode_many([torch.zeros(1, 400), torch.zeros(400)])
    with pytest.raises(ValueError, match="empty audio"):
        codec.encode_many([torch.zeros(1, 0)])
    with pytest.raises(ValueError, match="batch_size"):
        codec.encode_many([torch.zeros(1, 400)], batch_size=0)
