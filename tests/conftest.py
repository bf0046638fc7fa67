"""Shared test settings: small tensors run fastest single-threaded on these 2-core machines."""

import torch

torch.set_num_threads(1)
