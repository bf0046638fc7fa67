"""omnitok.data: real data sources, WebDataset shards, splits, the builder and the loader.

    from omnitok.data import build_dataset, ShardDataset, collate
    build_dataset("digits")                                  # -> ~/.cache/omnitok/datasets/digits/*.tar
    ds = ShardDataset("digits", "train", image_size=32)      # dicts with image (3, 32, 32) in [-1, 1]

See omnitok.data.sources for the source contract and docs/data.md for the datasets.
"""

from omnitok.data.build import BuildContext, build_dataset, dataset_cards, load_card, shard_paths
from omnitok.data.dataset import ShardDataset, collate, load_split
from omnitok.data.paths import MissingToolError, cache_root, dataset_dir
from omnitok.data.shards import ShardWriter, iter_shard, read_shard_keys
from omnitok.data.splits import split_of
from omnitok.data.types import Example

__all__ = [
    "BuildContext",
    "Example",
    "MissingToolError",
    "ShardDataset",
    "ShardWriter",
    "build_dataset",
    "cache_root",
    "collate",
    "dataset_cards",
    "dataset_dir",
    "iter_shard",
    "load_card",
    "load_split",
    "read_shard_keys",
    "shard_paths",
    "split_of",
]
