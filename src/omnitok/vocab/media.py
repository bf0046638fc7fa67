"""Running the codecs over documents: raw segments (text strings, image / audio / video tensors) -> codes
(:func:`encode_media`, batched per modality and shape) and codes -> raw data (:func:`decode_media`).

The tokenizing pipeline (``data/tokenize.py``) calls :func:`encode_media` on its batches of documents;
generation calls both for raw prompts and for the decoded outputs. The vocabulary's ``encode`` runs it only for a
document that still has raw segments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from omnitok.codecs.base import Codec
from omnitok.vocab.document import Document, Segment, Text, Uncond
from omnitok.vocab.errors import VocabularyError

__all__ = ["decode_media", "device_of", "encode_media"]


def device_of(module: torch.nn.Module) -> torch.device:
    """Where a codec's tensors live (parameters or buffers; cpu when it has none)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def _codec(codecs: Mapping[str, Codec], modality: str) -> Codec:
    c = codecs.get(modality)
    if c is None:
        raise VocabularyError(f"a raw {modality} segment needs the {modality} codec, which is not loaded")
    return c


@torch.no_grad()
def encode_media(codecs: Mapping[str, Codec], docs: Sequence[Document] | Document, batch_size: int = 64) -> None:
    """Encode the raw data of every segment without codes (in place), in batches per modality and data shape."""
    if isinstance(docs, Document):
        docs = [docs]
    # (modality, data shape) -> segments; shape None: text, or clips of any length for a codec whose
    # encode_many pads them exactly (AudioCodec)
    groups: dict[tuple[str, tuple[int, ...] | None], list[Segment]] = {}
    for doc in docs:
        for seg in doc.segments:
            if isinstance(seg, Uncond) or seg.codes is not None:
                continue
            if isinstance(seg, Text):
                if seg.text is None:
                    raise VocabularyError("a Text segment needs text or codes")
                groups.setdefault(("text", None), []).append(seg)
                continue
            if seg.data is None:
                raise VocabularyError(f"a {type(seg).__name__} segment needs data or codes")
            ragged = hasattr(codecs.get(seg.modality), "encode_many")
            groups.setdefault((seg.modality, None if ragged else tuple(seg.data.shape)), []).append(seg)
    for (modality, shape), segs in groups.items():
        codec = _codec(codecs, modality)
        if modality == "text":
            for i in range(0, len(segs), batch_size):
                chunk = segs[i : i + batch_size]
                for s, c in zip(chunk, codec.encode([s.text for s in chunk])):
                    s.codes = torch.as_tensor(c, dtype=torch.long).reshape(-1)
            continue
        dev = device_of(codec)
        if shape is None:  # one call: the codec sorts the clips by length and batches them itself
            for s, c in zip(segs, codec.encode_many([s.data.to(dev) for s in segs])):
                s.codes = c.cpu()
            continue
        for i in range(0, len(segs), batch_size):
            chunk = segs[i : i + batch_size]
            codes = codec.encode(torch.stack([s.data for s in chunk]).to(dev)).cpu()  # (B, *grid, n_q)
            for s, c in zip(chunk, codes):
                s.codes = c


@torch.no_grad()
def decode_media(codecs: Mapping[str, Codec], doc: Document) -> Document:
    """Fill the raw data of every code segment with the codecs (in place; returns doc)."""
    for seg in doc.segments:
        if isinstance(seg, Uncond) or seg.codes is None:
            continue
        codec = _codec(codecs, seg.modality)
        if isinstance(seg, Text):
            seg.text = codec.decode([seg.codes])[0]
            continue
        dev = device_of(codec)
        seg.data = codec.decode(seg.codes.unsqueeze(0).to(dev))[0].cpu()
    return doc
