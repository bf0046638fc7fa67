"""The audio codec's CTC content loss: logged, its head checkpointed and resumed exactly, off by default; the head
learns a fixed batch; greedy decoding matches a naive reference; folders without transcripts are refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from omnitok.codecs.builder import load_preset
from omnitok.codecs.losses.ctc import (
    ALPHABET,
    BLANK,
    CTCHead,
    ctc_loss,
    encode_transcripts,
    greedy_decode,
    normalize_transcript,
)
from omnitok.data.build import build_dataset
from omnitok.train.audio_codec import train


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 spoken digit strings (flite), with train and val splits: ``<root>/datasets/speech``."""
    npm = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    npm.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("ctc_speech")
    build_dataset(
        "speech",
        root=root,
        limit=24,
        progress=False,
        npm_root=npm,
        splits="train=0.75,val=0.25",
        allow_apt=False,
        options={
            "digits": "24",
            "single_digits": "0",
            "emoji": "0",
            "sentences": "0",
            "engines": "flite",
            "workers": "1",
        },
    )
    return root / "datasets" / "speech"


def _cfg(data: Path | str, *extra: str) -> dict:
    return load_preset(
        "audio-debug",
        [
            f"data.name={data}",
            "train.steps=6",
            "train.save_every=3",
            "loss.ctc=1.0",
            "loss.ctc_batch=2",
            *extra,
        ],
    )


def test_ctc_logged_checkpointed_and_resumed_exactly(tmp_path, speech_dir) -> None:
    cfg = _cfg(speech_dir)
    final = train(cfg, tmp_path / "a", resume=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(np.isfinite(r["ctc"]) and r["ctc"] > 0 for r in rows)
    last = load_file(str(tmp_path / "a" / "checkpoints" / "step_00000006" / "model.safetensors"))
    mid = load_file(str(tmp_path / "a" / "checkpoints" / "step_00000003" / "model.safetensors"))
    head = {k for k in last if k.startswith("ctc_head.")}
    assert head == {f"ctc_head.{k}" for k in CTCHead(16).state_dict()}
    assert not all(torch.equal(last[k], mid[k]) for k in head)  # the head trains
    assert not any(k.startswith("ctc_head.") for k in load_file(str(final / "model.safetensors")))
    probe = json.loads((final / "config.json").read_text())["train"]["ctc_probe"]
    val_count = json.loads((speech_dir / "card.json").read_text())["counts"]["val"]
    assert probe["split"] == "val" and probe["clips"] == val_count and {"cer", "wer"} <= probe.keys()

    # resume from step 3: the same head (and codec) at step 6 as the straight run
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    ckpts = tmp_path / "b" / "checkpoints"
    (ckpts / "latest.json").write_text(json.dumps({"step": 3, "path": "step_00000003"}))
    shutil.rmtree(ckpts / "step_00000006")
    shutil.rmtree(tmp_path / "b" / "codec")
    train(cfg, tmp_path / "b", resume=True)
    again = load_file(str(ckpts / "step_00000006" / "model.safetensors"))
    assert again.keys() == last.keys()
    assert all(torch.equal(again[k], last[k]) for k in last)


def test_ctc_off_keeps_no_head(tmp_path) -> None:
    cfg = load_preset("audio-debug", ["train.steps=2", "train.save_every=0"])
    final = train(cfg, tmp_path, resume=False)
    ckpt = load_file(str(tmp_path / "checkpoints" / "step_00000002" / "model.safetensors"))
    assert ckpt and not any(k.startswith("ctc_head.") for k in ckpt)
    assert "ctc" not in json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert "ctc_probe" not in json.loads((final / "config.json").read_text())["train"]


def test_resume_with_a_different_ctc_setting_says_so(tmp_path, speech_dir) -> None:
    train(_cfg(speech_dir, "loss.ctc=0", "train.steps=2"), tmp_path, resume=False)
    with pytest.raises(ValueError, match="trained without loss.ctc and this run has it on"):
        train(_cfg(speech_dir, "train.steps=4"), tmp_path, resume=True)


def test_ctc_refuses_data_without_transcripts(tmp_path) -> None:
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    sf.write(wavs / "a.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32), 16000)
    for name in (str(wavs), "synthetic"):
        with pytest.raises(ValueError, match="loss.ctc needs a built dataset with transcripts"):
            train(_cfg(name), tmp_path / "out", resume=False)


def test_head_learns_a_fixed_batch() -> None:
    torch.manual_seed(0)
    texts = ["three one four", "nine five"]
    frames = torch.tensor([40, 28])
    latents = torch.randn(2, 16, 40)  # (B, D, F); frames past 28 of the second clip are padding
    latents[1, :, 28:] = 0
    targets, lengths = encode_transcripts(texts)
    head = CTCHead(16)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = ctc_loss(head(latents), frames, targets, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    assert greedy_decode(head(latents), frames) == texts


def _naive_decode(logits: torch.Tensor, frames: torch.Tensor) -> list[str]:
    out = []
    for b in range(logits.shape[0]):
        prev, chars = None, []
        for t in range(int(frames[b])):
            i = max(range(logits.shape[2]), key=lambda v: float(logits[b, t, v]))
            if i != prev and i != BLANK:
                chars.append(ALPHABET[i - 1])
            prev = i
        out.append("".join(chars))
    return out


def test_greedy_decode_matches_naive_reference() -> None:
    path = [BLANK, "t", "t", "h", BLANK, "r", "e", BLANK, "e", "e", " ", "o", BLANK, BLANK]  # one best path
    ids = [i if i == BLANK else ALPHABET.index(i) + 1 for i in path]
    logits = torch.full((1, len(ids), len(ALPHABET) + 1), -5.0)
    logits[0, torch.arange(len(ids)), torch.tensor(ids)] = 3.0
    assert greedy_decode(logits, torch.tensor([len(ids)])) == ["three o"]
    assert greedy_decode(logits, torch.tensor([8])) == ["thre"]  # frames past the true length are ignored
    g = torch.Generator().manual_seed(1)
    rand = torch.randn(5, 30, len(ALPHABET) + 1, generator=g)
    rand[..., BLANK] += 1.0  # blanks frequent, as in a trained head
    frames = torch.tensor([30, 1, 17, 0, 25])
    assert greedy_decode(rand, frames) == _naive_decode(rand, frames)


def test_transcripts_normalised_to_the_alphabet() -> None:
    assert normalize_transcript("  It\u2019s 3 O'Clock,\tnow!\n") == "it's o'clock now"
    targets, lengths = encode_transcripts(["ab", "z '"])
    assert lengths.tolist() == [2, 3] and targets.tolist() == [1, 2, 26, 27, 28]
