"""``omnitok data build|info|show``: build datasets, list them, look at them.

    omnitok data build digits                     # ~/.cache/omnitok/datasets/digits (OMNITOK_HOME overrides)
    omnitok data build all --size 64 --limit 100  # a quick slice of every source
    omnitok data info                             # counts, sizes, licences
    omnitok data show emoji --split val --out sheet.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from omnitok.data.build import build_dataset, dataset_cards, load_card
from omnitok.data.paths import cache_root, dataset_dir

__all__ = [
    "add_arguments_data_build",
    "add_arguments_data_info",
    "add_arguments_data_show",
    "contact_sheet",
    "run_data_build",
    "run_data_info",
    "run_data_show",
]


def _options(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ValueError(f"--option expects key=value, got {item!r}")
        out[k] = v
    return out


def add_arguments_data_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="source to build: digits, emoji, text, speech, video, or all")
    parser.add_argument("--size", type=int, default=None, help="image/video side in px (default: the source's)")
    parser.add_argument("--root", default=None, help="cache root (default $OMNITOK_HOME or ~/.cache/omnitok)")
    parser.add_argument("--limit", type=int, default=None, help="build only the first N examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", default=None, help="fractions, e.g. train=0.9,val=0.05,test=0.05")
    parser.add_argument("--shard-size", type=int, default=None, help="examples per shard")
    parser.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="source-specific option")
    parser.add_argument("--force", action="store_true", help="delete what is built and build again")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_data_build(args: argparse.Namespace) -> int:
    from omnitok.data.cards import human_bytes
    from omnitok.data.sources import available_sources

    names = available_sources() if args.name == "all" else [args.name]
    failures = 0
    for name in names:
        try:
            card = build_dataset(
                name, root=args.root, size=args.size, limit=args.limit, seed=args.seed, splits=args.splits,
                shard_size=args.shard_size, options=_options(args.option), force=args.force,
                progress=not args.no_progress,
            )
        except (RuntimeError, ValueError, ModuleNotFoundError) as e:  # MissingToolError is a RuntimeError
            print(f"omnitok data build {name}: {e}", file=sys.stderr)
            failures += 1
            continue
        counts = ", ".join(f"{k} {v}" for k, v in card["counts"].items())
        print(f"{name}: {card['total']} examples ({counts}), {human_bytes(card['total_bytes'])} "
              f"in {dataset_dir(name, args.root)}")
    return 1 if failures else 0


def add_arguments_data_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None, help="cache root (default $OMNITOK_HOME or ~/.cache/omnitok)")
    parser.add_argument("--json", action="store_true", help="print the cards as JSON")
    parser.add_argument("--verify", action="store_true", help="check every shard against its sha256")


def run_data_info(args: argparse.Namespace) -> int:
    from omnitok.data.cards import format_info, verify_card

    cards = dataset_cards(args.root)
    if args.json:
        print(json.dumps(cards, indent=2, ensure_ascii=False))
    else:
        print(f"datasets under {cache_root(args.root) / 'datasets'}")
        print(format_info(cards))
    if args.verify:
        problems = [p for c in cards for p in verify_card(c["name"], args.root)]
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            return 1
        print(f"verified {sum(len(c['shards']) for c in cards)} shards: all checksums match")
    return 0


def add_arguments_data_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a built dataset name, or a folder / .tar / manifest.jsonl")
    parser.add_argument("--split", default="train")
    parser.add_argument("--root", default=None, help="cache root (default $OMNITOK_HOME or ~/.cache/omnitok)")
    parser.add_argument("--out", default=None, help="contact sheet PNG path (default <name>-<split>.png)")
    parser.add_argument("-n", "--count", type=int, default=64, help="how many examples to show")
    parser.add_argument("--tile", type=int, default=64, help="tile side in px for the contact sheet")


def contact_sheet(images: list, tile: int = 64, columns: int | None = None, pad: int = 2):
    """uint8 (H, W, 3) arrays -> one PIL image, a grid of ``tile`` x ``tile`` cells on grey."""
    from PIL import Image

    from omnitok.io.image import resize_rgb

    n = len(images)
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / columns))
    sheet = Image.new("RGB", (columns * (tile + pad) + pad, rows * (tile + pad) + pad), (128, 128, 128))
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet.paste(Image.fromarray(resize_rgb(img, tile)), (pad + c * (tile + pad), pad + r * (tile + pad)))
    return sheet


def run_data_show(args: argparse.Namespace) -> int:
    from omnitok.data.dataset import ShardDataset
    from omnitok.io.image import tensor_to_uint8

    try:
        ds = ShardDataset(args.name, args.split, root=args.root, num_frames=1)
    except ValueError as e:
        print(f"omnitok data show: {e}", file=sys.stderr)
        return 2
    images, lines = [], []
    for i, item in enumerate(ds):
        if i >= args.count:
            break
        label = item["meta"].get("label")
        caption = item["caption"]
        if "image" in item:
            images.append(tensor_to_uint8(item["image"]))
            lines.append(f"{item['key']}\t{label}\t{caption}")
        elif "video" in item:
            images.append(tensor_to_uint8(item["video"][0]))
            lines.append(f"{item['key']}\t{label}\t{caption}")
        elif "audio" in item:
            seconds = item["audio"].shape[-1] / item["sample_rate"]
            voice = item["meta"].get("voice", "")
            lines.append(f"{item['key']}\t{seconds:.2f} s\t{voice}\t{caption}")
        elif "text" in item:
            text = " ".join(item["text"].split())
            lines.append(f"{item['key']}\t{item['meta'].get('source', '')}\t{text[:160]}")
    if ds.skipped:
        print(f"({ds.skipped} corrupt example(s) skipped)", file=sys.stderr)
    for line in lines:
        print(line)
    if images:
        out = Path(args.out or f"{Path(str(args.name)).name}-{args.split}.png")
        contact_sheet(images, tile=args.tile).save(out)
        card = load_card(str(args.name), args.root)
        total = card["counts"].get(args.split) if card else None
        print(f"wrote {out} ({len(images)} of {total if total is not None else '?'} {args.split} examples)")
    elif not lines:
        print(f"omnitok data show: no examples in split {args.split!r}", file=sys.stderr)
        return 1
    return 0
