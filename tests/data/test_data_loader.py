"""ShardDataset: ranks x workers coverage, corrupt files, manifests, audio/video layouts, collate."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from omnitok.data.dataset import ShardDataset, collate
from omnitok.data.manifest import write_manifest
from omnitok.data.shards import write_shard
from omnitok.data.types import Example
from omnitok.io.image import encode_png


def _png(seed: int, side: int = 6) -> bytes:
    return encode_png((np.random.default_rng(seed).random((side, side, 3)) * 255).astype(np.uint8))


def _write_shards(folder, n_shards: int, per_shard: int, split: str = "train") -> list[str]:
    keys = []
    for s in range(n_shards):
        exs = [Example(f"s{s}-{i:03d}", {"png": _png(s * 1000 + i)}, {"caption": f"c{s}-{i}"})
               for i in range(per_shard)]
        write_shard(folder / f"{split}-{s:06d}.tar", exs)
        keys += [e.key for e in exs]
    return keys


def _keys_over(ds_factory, world_size: int, num_workers: int) -> Counter:
    seen: Counter = Counter()
    for rank in range(world_size):
        ds = ds_factory(rank, world_size)
        loader = DataLoader(ds, batch_size=4, num_workers=num_workers, collate_fn=collate)
        for batch in loader:
            seen.update(batch["key"])
    return seen


@pytest.mark.parametrize("n_shards", [9, 2], ids=["shard-level", "example-striding"])
def test_ranks_x_workers_cover_every_example_once(tmp_path, n_shards):
    keys = _write_shards(tmp_path, n_shards, per_shard=7)
    seen = _keys_over(lambda r, w: ShardDataset(tmp_path, "train", rank=r, world_size=w), 2, 2)
    assert seen == Counter(keys)
    single = [x["key"] for x in ShardDataset(tmp_path, "train")]
    assert sorted(single) == sorted(keys) and len(single) == len(keys)


def test_shuffle_is_a_permutation_and_changes_with_epoch(tmp_path):
    keys = _write_shards(tmp_path, 3, per_shard=10)
    ds = ShardDataset(tmp_path, "train", shuffle=True, shuffle_buffer=8, seed=1, decode=False)
    a = [e.key for e in ds]
    ds.set_epoch(1)
    b = [e.key for e in ds]
    assert sorted(a) == sorted(b) == sorted(keys) and a != b


def test_corrupt_png_is_skipped_with_warning(tmp_path, caplog):
    good = [Example(f"good{i}", {"png": _png(i)}, {"caption": "ok"}) for i in range(4)]
    bad = Example("broken", {"png": _png(9)[:40]}, {"caption": "truncated png"})
    bad_meta = Example("badmeta", {"png": _png(10)}, {})
    write_shard(tmp_path / "train-000000.tar", [good[0], bad, good[1], good[2], bad_meta, good[3]])
    # meta that is not JSON: overwrite the member bytes through a hand-made shard
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(tmp_path / "train-000000.tar") as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src:
            data = src.extractfile(m).read()
            if m.name == "badmeta.json":
                data = b"{not json"
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    (tmp_path / "train-000000.tar").write_bytes(buf.getvalue())

    ds = ShardDataset(tmp_path, "train", image_size=8)
    with pytest.warns(RuntimeWarning) as record, caplog.at_level(logging.WARNING):
        items = list(ds)
    assert [x["key"] for x in items] == ["good0", "good1", "good2", "good3"]
    assert ds.skipped == 2
    messages = [str(w.message) for w in record]
    assert any("broken" in m and "train-000000.tar" in m for m in messages)
    assert any("badmeta" in m for m in messages)
    assert "skipped 2 corrupt" in caplog.text


def test_manifest_folder_loads_like_shards(tmp_path):
    from PIL import Image

    rows = []
    for i in range(12):
        Image.fromarray(np.full((10, 14, 4), [200, 10, 10, 255 if i % 2 else 0], np.uint8)).save(
            tmp_path / f"img{i}.png")
        rows.append({"image": f"img{i}.png", "caption": f"picture {i}", "label": i % 3})
    rows.append({"text": "an inline document", "key": "doc.1"})
    rows.append({"image": "missing.png", "caption": "no file"})
    write_manifest(tmp_path / "manifest.jsonl", rows)
    ds = ShardDataset(tmp_path, split=None, image_size=16)
    with pytest.warns(RuntimeWarning, match="manifest"):
        items = list(ds)
    images = [x for x in items if "image" in x]
    assert len(images) == 12 and ds.skipped == 1
    assert images[0]["image"].shape == (3, 16, 16) and images[0]["caption"] == "picture 0"
    # alpha 0 composites to white, alpha 255 keeps the colour
    assert torch.allclose(images[0]["image"][:, 5, 5], torch.ones(3))
    assert images[1]["image"][0, 5, 5] > 0.5 and images[1]["image"][1, 5, 5] < -0.5
    assert [x["text"] for x in items if "text" in x] == ["an inline document"]
    # the same rows split by key hash: disjoint and complete
    parts = [{x.key for x in ShardDataset(tmp_path / "manifest.jsonl", s, decode=False)}
             for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(rows) and len(set.union(*parts)) == len(rows)
    # ranks x workers over a single manifest: example striding
    seen = Counter()
    for rank in range(2):
        seen.update(e.key for e in ShardDataset(tmp_path, None, decode=False, rank=rank, world_size=2))
    assert sum(seen.values()) == len(rows) and max(seen.values()) == 1


def test_audio_and_video_layouts(tmp_path):
    from omnitok.io.audio import write_flac

    t = np.arange(8000) / 8000.0
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    files = [Example("tone", {"flac": write_flac(wave, 8000)}, {"transcript": "a tone"}),
             Example("short", {"flac": write_flac(wave[:4000], 8000)}, {"transcript": "half"})]
    write_shard(tmp_path / "test-000000.tar", files)
    items = list(ShardDataset(tmp_path, "test", sample_rate=16000))
    assert items[0]["audio"].shape == (1, 16000) and items[0]["sample_rate"] == 16000
    assert items[0]["caption"] == "a tone" and items[0]["audio"].abs().max() <= 1.0
    batch = collate(items)
    assert batch["audio"].shape == (2, 1, 16000) and batch["audio_lengths"].tolist() == [16000, 8000]

    video_io = pytest.importorskip("omnitok.io.video")
    frames = np.zeros((5, 16, 16, 3), np.uint8)
    for i in range(5):
        frames[i, 4:10, i : i + 6] = 255
    write_shard(tmp_path / "val-000000.tar", [Example("clip", {"mp4": video_io.write_mp4(frames, 8)})])
    clip = next(iter(ShardDataset(tmp_path, "val", video_size=8, num_frames=8)))
    assert clip["video"].shape == (8, 3, 8, 8)
    assert clip["video"].min() >= -1 and clip["video"].max() <= 1
    assert torch.equal(clip["video"][5], clip["video"][7])  # padded by repeating the last frame


def test_bad_sources_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        ShardDataset("not-a-dataset", "train", root=tmp_path)
    _write_shards(tmp_path, 1, 2, split="train")
    with pytest.raises(ValueError, match="no shards for split 'val'"):
        ShardDataset(tmp_path, "val")


def test_collate_labels_and_ragged_fields():
    a = {"key": "a", "image": torch.zeros(3, 4, 4), "label": 3, "caption": "x"}
    b = {"key": "b", "image": torch.ones(3, 4, 4), "label": 5, "caption": "y", "extra": "only here"}
    batch = collate([a, b])
    assert batch["image"].shape == (2, 3, 4, 4) and batch["label"].tolist() == [3, 5]
    assert batch["key"] == ["a", "b"] and batch["extra"] == [None, "only here"]
    assert collate([{"label": "Flags"}, {"label": "Objects"}])["label"] == ["Flags", "Objects"]
