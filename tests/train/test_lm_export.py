"""Export to Hugging Face: transformers loads the folder with no custom code and its logits equal ours."""

from __future__ import annotations

import pytest
import torch

from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer
from omnitok.train.export_hf import ExportError, export_hf

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize(("qk_norm", "tie", "arch"), [(False, False, "LlamaForCausalLM"),
                                                      (True, True, "Qwen3ForCausalLM")])
def test_export_logits_match(tmp_path, qk_norm, tie, arch):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=101, n_layer=2, dim=64, n_head=4, n_kv_head=2, ffn_multiple_of=32,
                      qk_norm=qk_norm, tie_embeddings=tie, rope_theta=500.0)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # non-trivial norm weights so a missing norm would show
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    export_hf(model, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(hf).__name__ == arch
    idx = torch.randint(0, 101, (2, 23))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


def test_export_refuses_2d_positions(tmp_path):
    model = Transformer(ModelConfig(vocab_size=32, n_layer=1, dim=32, n_head=2, rope_axes=2))
    with pytest.raises(ExportError, match="rope_axes=2"):
        export_hf(model, tmp_path)
