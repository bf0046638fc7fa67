"""``omnitok train diffusion`` end to end on the debug presets: the loss falls, resume is bit-identical, the samplers
give images of the right shape, ``omnitok generate --method diffusion`` writes one, latent diffusion stores its scale."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from omnitok.cli import main
from omnitok.diffusion import make_scheduler
from omnitok.diffusion.model import DiffusionModel
from omnitok.eval.diffusion import load_pipeline
from omnitok.generation.diffusion import DiffusionPipeline
from omnitok.train.diffusion import load_pairs, load_preset, train

QUIET = ["train.progress=false"]


def fixed_batch_loss(model: DiffusionModel, x0: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor) -> float:
    """MSE to the training target on one fixed batch: every timestep bucket, fixed noise."""
    sched = make_scheduler("ddpm", model.scheduler_config)
    g = torch.Generator().manual_seed(123)
    t = torch.linspace(0, sched.num_train_timesteps - 1, len(x0)).long()
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        out = model(sched.add_noise(x0, noise, t), t, ids, lengths)
    return float(torch.nn.functional.mse_loss(out, sched.training_target(x0, noise, t)))


def test_debug_training_loss_falls_and_sampling_shapes(tmp_path) -> None:
    cfg = load_preset("debug", [*QUIET, "train.steps=40", "train.sample_every=40", "train.save_every=40"])
    final = train(cfg, tmp_path / "run")
    assert (final / "config.json").is_file() and (final / "model.safetensors").is_file()
    assert (final / "text_codec" / "tokenizer.json").is_file()
    assert (tmp_path / "run" / "samples" / "step-0000040.png").is_file()
    pipe = DiffusionPipeline.load(tmp_path / "run")
    images, captions = load_pairs(cfg["data"], progress=False)
    x0 = images[:32].float() / 127.5 - 1
    ids, lengths = pipe.tokenize(captions[:32])
    trained = fixed_batch_loss(pipe.model, x0, ids, lengths)
    torch.manual_seed(0)
    untrained = fixed_batch_loss(DiffusionModel(pipe.model.config), x0, ids, lengths)
    assert trained < 0.85 * untrained, (trained, untrained)
    for sampler, steps in (("ddim", 3), ("ddpm", 5), ("euler", 3)):
        out, stats = pipe(["a red square", "a blue square", ""], sampler=sampler, steps=steps, cfg_scale=2.0)
        assert out.shape == (3, 3, 16, 16) and out.min() >= -1 and out.max() <= 1
        assert stats["images"] == 3 and stats["seconds_per_image"] > 0
    png = tmp_path / "seven.png"
    assert main(["generate", "a green square", "--to", "image", "--method", "diffusion", "--steps", "3",
                 "--sampler", "ddim", "--cfg", "3", "--ckpt", str(tmp_path / "run"), "--out", str(png),
                 "--no-stream", "--threads", "1"]) == 0
    from PIL import Image

    assert Image.open(png).size == (16, 16)
    from omnitok.info import describe

    lines = describe(tmp_path / "run")
    assert lines[1].startswith("diffusion") and "unet denoiser" in lines[2] and "cosine, 100 timesteps" in lines[3]


def test_resume_is_bit_identical(tmp_path) -> None:
    over = [*QUIET, "train.steps=8", "train.save_every=4", "train.sample_every=0"]
    train(load_preset("debug-dit", over), tmp_path / "straight")
    train(load_preset("debug-dit", [*over, "train.halt_after=4"]), tmp_path / "halted")
    assert sorted(p.name for p in (tmp_path / "halted" / "checkpoints").glob("step_*")) == ["step_00000004"]
    train(load_preset("debug-dit", over), tmp_path / "halted", resume=True)
    for name in ("model.safetensors", "optimizer.safetensors"):
        a = load_file(str(tmp_path / "straight" / "checkpoints" / "step_00000008" / name))
        b = load_file(str(tmp_path / "halted" / "checkpoints" / "step_00000008" / name))
        assert a.keys() == b.keys()
        if name == "model.safetensors":  # the trained weights and their EMA
            assert any(k.startswith("ema.") for k in a) and any(k.startswith("model.") for k in a)
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)


def test_latent_diffusion_stores_the_scale_and_decodes(tmp_path) -> None:
    from omnitok.codecs.image import ImageCodec
    from omnitok.io.image import to_channels

    torch.manual_seed(0)
    codec = ImageCodec(3, channels=8, channel_mult=[1, 2, 2], z_channels=8, quantizer="vq",
                       quantizer_kwargs={"dim": 4, "codebook_size": 16})
    codec.save_pretrained(tmp_path / "codec")
    cfg = load_preset("debug", [*QUIET, "train.steps=3", "train.sample_every=0", "train.save_every=0",
                                f"latent.codec={tmp_path / 'codec'}"])
    final = train(cfg, tmp_path / "run")
    pipe = DiffusionPipeline.load(final)
    lat = pipe.model.latent
    assert pipe.model.sample_shape == (4, 4, 4)  # (D, H/4, W/4) of the codec
    images, _ = load_pairs(cfg["data"], progress=False)
    with torch.no_grad():
        z = pipe.image_codec.encode_latents(to_channels(images.float() / 127.5 - 1, 3))
    scaled = (z - lat["shift"]) * lat["scale"]  # what the denoiser was trained on: unit variance, zero mean
    assert abs(scaled.std().item() - 1) < 1e-4 and abs(scaled.mean().item()) < 1e-4
    out, _ = pipe(["a red square", "a blue square"], sampler="ddim", steps=2, cfg_scale=2.0)
    assert out.shape == (2, 3, 16, 16)
    assert (final / "image_codec" / "config.json").is_file()


def test_conditioning_on_a_clip_text_tower(tmp_path) -> None:
    from omnitok.align.model import AlignConfig, AlignModel, BPETokenizer, ImageTowerConfig, TextTowerConfig
    from omnitok.codecs.text import TextCodec

    bpe = TextCodec.train_bpe([f"a {c} square" for c in ("red", "green", "blue", "yellow")] * 4, vocab_size=270)
    torch.manual_seed(0)
    clip = AlignModel(AlignConfig(vocab_size=270, embed_dim=16, text=TextTowerConfig(dim=16, n_layer=1, n_head=2,
                                                                                      max_len=8),
                                  image=ImageTowerConfig(image_size=16, widths=[8, 16])),
                      BPETokenizer(bpe.tokenizer.to_str()))
    clip.save_pretrained(tmp_path / "clip")
    cfg = load_preset("debug", [*QUIET, "train.steps=3", "train.sample_every=3", "train.save_every=0",
                                f"text.clip={tmp_path / 'clip'}"])
    final = train(cfg, tmp_path / "run")
    assert (final / "text_clip" / "config.json").is_file() and not (final / "text_codec").exists()
    pipe = load_pipeline(final)  # its CLIP text tower: eval.diffusion opens it
    assert pipe.model.config["text"] == {"kind": "embedding", "embed_dim": 16, "dim": 32}
    ids, lengths = pipe.tokenize(["a red square", "a blue square"])
    assert ids.shape == (2, 1, 16) and lengths.tolist() == [1, 1]
    out, _ = pipe(["a red square", "a blue square"], sampler="euler", steps=2, cfg_scale=2.0)
    assert out.shape == (2, 3, 16, 16)
