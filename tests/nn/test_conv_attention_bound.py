"""The codecs' spatial attention refuses a feature map too large to attend over, before allocating."""

from __future__ import annotations

import pytest
import torch

from omnitok.nn.conv import ConvAttention2d


def test_large_feature_map_is_refused_with_a_message():
    attn = ConvAttention2d(8)
    assert attn(torch.randn(1, 8, 4, 4)).shape == (1, 8, 4, 4)
    side = int(ConvAttention2d.MAX_POSITIONS ** 0.5) + 1
    x = torch.empty(1, 8, side, side)  # the 4000 px photo case, scaled down: refused before any attention
    with pytest.raises(ValueError, match=rf"{side} x {side} feature map .* resize it"):
        attn(x)
