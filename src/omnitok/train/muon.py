"""Muon for the hidden matrices, AdamW for everything else, in one optimizer.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers in neural networks"; at scale: Liu et al. 2025,
"Muon is scalable for LLM training", arXiv 2502.16982) keeps SGD momentum per weight matrix and replaces the
update by the nearest semi-orthogonal matrix, ``U V^T`` of the momentum's SVD, computed with a few Newton-Schulz
iterations instead of an SVD. Every direction of the update then moves by the same amount, so the rare directions
a small model learns late are not drowned by the dominant ones.

Embeddings, the (tied) head and the norms are not hidden matrices: they get AdamW, as in both papers. The
orthogonalised update is scaled by ``0.2 * sqrt(max(rows, cols))`` (Liu et al.): its RMS then matches a typical
AdamW update, so one learning rate and one weight decay serve both kinds of parameter and an AdamW recipe carries
over. Decoupled weight decay on both.

Each parameter group says which rule it follows (``muon: True / False``); :func:`param_groups` makes the
groups for a transformer, :func:`conv_param_groups` for a convolutional codec: a convolution's filters
(out, in, k...) are orthogonalised as the matrix (out, in * k...), as in Jordan et al.'s CIFAR-10 runs. Data
parallel (DDP) works as it is: every rank orthogonalises the same averaged gradient. Sharded parameters (FSDP)
do not: the orthogonalisation needs the whole matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Muon", "codec_optimizer", "conv_param_groups", "orthogonalize", "orthogonalize_svd", "param_groups"]

# quintic Newton-Schulz coefficients (a, b, c) of Jordan et al.: the iteration x <- a x + b (x x^T) x + c (x x^T)^2 x
# pushes every singular value of a matrix with spectral norm <= 1 into about [0.7, 1.2] in 5 steps
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximately ``U V^T`` for ``g = U S V^T`` (m, n): quintic Newton-Schulz iterations.

    Works on the wide orientation (m <= n, so ``x x^T`` is the small Gram matrix) and returns the input's shape
    and dtype. The singular values come out in about [0.7, 1.2], not exactly 1 (which Muon does not need); in
    bf16 on CUDA, in float32 elsewhere.
    """
    if g.dim() != 2:
        raise ValueError(f"orthogonalize: expected a matrix, got shape {tuple(g.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + eps)  # Frobenius norm >= spectral norm: every singular value <= 1
    for _ in range(steps):
        gram = x @ x.T  # (m, m)
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = x.T
    return x.to(g.dtype)


def orthogonalize_svd(g: Tensor) -> Tensor:
    """The exact ``U V^T`` by SVD (the reference :func:`orthogonalize` is tested against)."""
    u, _, vh = torch.linalg.svd(g.double(), full_matrices=False)
    return (u @ vh).to(g.dtype)


def _groups(model: nn.Module, weight_decay: float, rule: Callable[[str, Tensor], str]) -> list[dict[str, Any]]:
    """``rule(name, p)`` -> "muon" | "decay" (AdamW with weight decay) | "plain" (AdamW without); shared (tied)
    tensors appear once, empty groups are dropped."""
    split: dict[str, list[Tensor]] = {"muon": [], "decay": [], "plain": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        split[rule(name, p)].append(p)
    groups = [{"params": split["muon"], "muon": True, "weight_decay": weight_decay},
              {"params": split["decay"], "muon": False, "weight_decay": weight_decay},
              {"params": split["plain"], "muon": False, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Muon for the 2-D weights inside the transformer's blocks (``layers.*``); AdamW for the embeddings, the
    (tied) head and every vector (norms), without weight decay on those. Shared (tied) tensors appear once."""

    def rule(name: str, p: Tensor) -> str:
        if p.dim() == 2 and name.startswith("layers."):
            return "muon"
        return "decay" if p.dim() >= 2 and "embed_tokens" not in name else "plain"  # decay: an untied head

    return _groups(model, weight_decay, rule)


def conv_param_groups(model: nn.Module, weight_decay: float = 0.0,
                      exclude: tuple[str, ...] = ("codebook", "embed")) -> list[dict[str, Any]]:
    """Muon for every weight that is a matrix with both sides > 1 once its filter dimensions are flattened (linear
    layers, convolution filters, the direction ``v`` of a weight-normed convolution); AdamW for the rest (biases,
    norms, the weight-norm gains ``g`` of shape (out, 1, 1)) and for any parameter whose name holds one of
    ``exclude`` (a gradient-trained codebook is a table of codes, not a linear map)."""

    def rule(name: str, p: Tensor) -> str:
        if not (p.dim() >= 2 and p.shape[0] > 1 and p[0].numel() > 1):
            return "plain"
        return "decay" if any(e in name for e in exclude) else "muon"

    return _groups(model, weight_decay, rule)


def codec_optimizer(model: nn.Module, name: str, lr: float, betas: tuple[float, float], weight_decay: float = 0.0,
                    momentum: float = 0.95) -> torch.optim.Optimizer:
    """A codec trainer's ``train.optimizer``: ``adamw``, or ``muon`` (:func:`conv_param_groups`, one lr)."""
    if name == "muon":
        return Muon(conv_param_groups(model, weight_decay), lr=lr, momentum=momentum, betas=betas)
    if name != "adamw":
        raise ValueError(f"train.optimizer: expected adamw or muon, got {name!r}")
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)


class Muon(torch.optim.Optimizer):
    """Muon (Nesterov momentum, Newton-Schulz orthogonalised) on groups with ``muon=True``, AdamW on the rest.

    Args: lr (both rules), momentum (Muon), betas / eps (AdamW), weight_decay (decoupled, both), ns_steps
    (Newton-Schulz iterations).
    """

    def __init__(self, params: Iterable[dict[str, Any]], lr: float = 1e-3, momentum: float = 0.95,
                 betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8, weight_decay: float = 0.0,
                 ns_steps: int = 5) -> None:
        if lr < 0 or not 0.0 <= momentum < 1.0 or ns_steps < 1:
            raise ValueError(f"Muon: need lr >= 0, 0 <= momentum < 1, ns_steps >= 1 (got {lr}, {momentum}, "
                             f"{ns_steps})")
        defaults = {"lr": lr, "momentum": momentum, "betas": tuple(betas), "eps": eps,
                    "weight_decay": weight_decay, "ns_steps": ns_steps, "muon": False}
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["muon"] and any(p.dim() < 2 for p in group["params"]):
                shapes = [tuple(p.shape) for p in group["params"] if p.dim() < 2]
                raise ValueError(f"Muon: a muon=True group holds vectors {shapes[:3]} (give them AdamW)")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if wd:
                    p.mul_(1.0 - lr * wd)
                if group["muon"]:
                    self._muon_update(p, state, group)
                else:
                    self._adamw_update(p, state, group)
        return loss

    @staticmethod
    def _muon_update(p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g, mu = p.grad, group["momentum"]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.mul_(mu).add_(g)
        nesterov = g.add(buf, alpha=mu)  # g + mu * buf
        m = nesterov.reshape(p.shape[0], -1)  # a filter bank (out, in, k...) as the matrix (out, in * k...)
        update = orthogonalize(m, group["ns_steps"]).view_as(p)
        p.add_(update, alpha=-group["lr"] * 0.2 * math.sqrt(max(m.shape)))

    @staticmethod
    def _adamw_update(p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g, (b1, b2) = p.grad, group["betas"]
        if "exp_avg" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = float(state["step"])
        state["exp_avg"].lerp_(g, 1.0 - b1)
        state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1.0 - b2)
        denom = (state["exp_avg_sq"] / (1.0 - b2 ** t)).sqrt_().add_(group["eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1.0 - b1 ** t))
