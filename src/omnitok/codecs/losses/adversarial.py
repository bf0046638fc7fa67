"""PatchGAN discriminator, hinge losses and VQGAN's adaptive generator weight.

PatchGAN: Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks"
(arXiv 1611.07004); hinge loss and the adaptive weight
``lambda = ||grad_L(rec)|| / (||grad_L(gan)|| + 1e-4)`` at the decoder's last layer L: Esser et al.,
"Taming Transformers" (arXiv 2012.09841), eq. 7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.nn.conv import group_norm

__all__ = ["PatchDiscriminator", "adaptive_gan_weight", "hinge_d_loss", "hinge_g_loss"]


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) images -> (B, 1, h, w) real/fake logits, one per overlapping patch.

    ``num_layers`` stride-2 4x4 convs (channels doubling up to 8x), then a stride-1 conv and a 1-channel head.
    GroupNorm instead of BatchNorm so small batches behave.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, num_layers + 1):
            out = channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), group_norm(out), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator hinge loss: mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), halved."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """Generator side of the hinge GAN: -mean(D(G(z)))."""
    return -logits_fake.mean()


def adaptive_gan_weight(rec_loss: Tensor, gan_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4) -> Tensor:
    """VQGAN's balance: ||d rec / d last|| / (||d gan / d last|| + 1e-4), clamped to [0, max_weight], detached."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()
