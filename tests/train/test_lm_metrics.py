"""Schedule, per-modality / per-task statistics, curves, optimizer groups, CLI errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer
from omnitok.train import lm
from omnitok.train.metrics import TokenStats, plot_curves
from omnitok.train.schedule import lr_at


def test_warmup_then_cosine():
    assert lr_at(0, 1.0, 10, 110) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 10, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, 10, 110, 0.1) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert lr_at(110, 1.0, 10, 110, 0.1) == pytest.approx(0.1)
    assert lr_at(500, 1.0, 10, 110, 0.1) == pytest.approx(0.1)


def test_token_stats_per_modality_and_task():
    labels = torch.tensor([[1, 2, -100, 3]])
    logits = torch.full((1, 4, 5), -10.0)
    logits[0, 0, 1] = 10  # right
    logits[0, 1, 0] = 10  # wrong
    logits[0, 3, 3] = 10  # right
    ce = torch.tensor([[0.5, 2.0, 0.0, 1.0]])
    stats = TokenStats({2: "caption2image", 3: "image2caption"})
    stats.update(ce, logits, labels, torch.tensor([[1, 2, 0, 2]], dtype=torch.uint8),
                 torch.tensor([[2, 2, 2, 3]], dtype=torch.uint8))
    s = stats.summary("val_")
    assert s["val_loss"] == pytest.approx(3.5 / 3) and s["val_acc"] == pytest.approx(2 / 3)
    assert s["val_loss/text"] == pytest.approx(0.5) and s["val_acc/image"] == pytest.approx(0.5)
    assert s["val_loss/image"] == pytest.approx(1.5)
    assert s["val_loss/task_caption2image"] == pytest.approx(1.25) and s["val_acc/task_image2caption"] == 1.0


def test_plot_curves(tmp_path):
    rows = [{"split": "train", "step": i, "loss": 3 - i * 0.1, "loss/image": 3.0} for i in range(1, 5)]
    rows += [{"split": "val", "step": i, "val_loss": 3.0, "val_loss/text": 2.5 - i * 0.1} for i in (0, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    assert out is not None and out.read_bytes()[:4] == b"\x89PNG"


def test_no_weight_decay_on_norms_and_embeddings():
    model = Transformer(ModelConfig(vocab_size=32, n_layer=1, dim=16, n_head=2, qk_norm=True, tie_embeddings=True))
    opt = lm.build_optimizer(model, lm.TrainConfig(weight_decay=0.1))
    decay = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(model.embed_tokens.weight) not in decay and id(model.norm.weight) not in decay
    assert id(model.layers[0].self_attn.q_proj.weight) in decay
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_cli_reports_bad_override(cli_error):
    cli_error(["train", "lm", "--data", "synthetic", "nope=1"], "unknown key 'nope'")
    with pytest.raises(ValueError, match="does not exist"):
        lm.make_source("/no/such/folder", lm.TrainConfig(), "train", 0, 1)
    assert lm.source_name("a/digits/caption2image/train") == "caption2image"


def test_precision_auto_uses_bf16_only_where_native(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(lm, "cpu_has_native_bf16", lambda: False)
    with lm._autocast(cpu, "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with lm._autocast(cpu, "bf16"):  # asked for explicitly: bf16 even where it is emulated
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(lm, "cpu_has_native_bf16", lambda: True)
    with lm._autocast(cpu, "auto"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with lm._autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    assert isinstance(lm._autocast(cuda, "auto"), torch.autocast)
    with pytest.raises(ValueError, match="precision"):
        lm._autocast(cpu, "fp16")
