"""Loading a stored state dict into a model, checked: the names and shapes the model expects, and a tied output
head (stored once, as the token embedding) restored first. Shared by the Transformer's and the Transfusion
model's folders."""

from __future__ import annotations

from torch import Tensor, nn

from omnitok._io import CheckpointError

__all__ = ["check_state", "untie_head"]


def untie_head(state: dict[str, Tensor], prefix: str = "") -> None:
    """Give a state saved with a tied head its ``<prefix>lm_head.weight`` back (the token embedding)."""
    if f"{prefix}embed_tokens.weight" in state:
        state.setdefault(f"{prefix}lm_head.weight", state[f"{prefix}embed_tokens.weight"])


def check_state(model: nn.Module, state: dict[str, Tensor], weights: str, config: str) -> None:
    """CheckpointError naming the ``weights`` file and its ``config`` unless ``state`` holds exactly the model's
    names, each with the model's shape."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match {config}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}")
    for name, t in state.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{weights}: {name} has shape {tuple(t.shape)} but {config} implies "
                                  f"{tuple(expected[name].shape)}")
