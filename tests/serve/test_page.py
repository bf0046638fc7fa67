"""The web page at / in a real headless Chromium (Playwright driving Debian's ``chromium``): text -> image,
speech and video; an uploaded image and a recording -> text; errors shown on the page.

Set ``OMNITOK_SCREENSHOTS=DIR`` to keep the screenshots (docs/figures/serve-*.png come from this test)."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import KEY, Server

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install_sysdeps.sh)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"serve-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    keep = os.environ.get("OMNITOK_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_page_any_to_any(browser, server: Server, tmp_path):
    from omnitok.io.audio import write_wav

    page = browser.new_page(viewport={"width": 820, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    sync_api.expect(page.locator("#model")).to_have_text("omnitok")
    sync_api.expect(page.locator("#keybox")).to_be_visible()  # this server wants a key

    # a missing key is shown to the person, not swallowed
    page.fill("#prompt", "the digit seven")
    page.click("#to-image")
    sync_api.expect(page.locator("#error")).to_contain_text("no API key")
    page.fill("#apikey", KEY)

    # text -> image, with progress while it works
    page.click("#to-image")
    sync_api.expect(page.locator("#status progress")).to_have_count(1)
    img = page.locator("#result img")
    sync_api.expect(img).to_have_count(1, timeout=60_000)
    sync_api.expect(page.locator("#error")).to_be_hidden()
    page.wait_for_function("document.querySelector('#result img').naturalWidth > 0")
    assert img.evaluate("e => [e.naturalWidth, e.naturalHeight]") == [32, 32]
    sync_api.expect(page.locator("#status")).to_contain_text("image (32x32)")
    shot(page, tmp_path, "text-to-image")
    png = base64.b64decode(img.get_attribute("src").split(",", 1)[1])  # uploaded below

    # text -> speech: an audio player whose WAV the browser decodes
    page.click("#to-speech")
    audio = page.locator("audio#speech")
    sync_api.expect(audio).to_have_count(1, timeout=60_000)
    page.wait_for_function("document.querySelector('audio#speech').readyState >= 1", timeout=30_000)
    assert audio.evaluate("e => e.duration") > 0.1

    # text -> video
    page.click("#to-video")
    sync_api.expect(page.locator("video#video-out")).to_have_count(1, timeout=60_000)
    sync_api.expect(page.locator("#status")).to_contain_text("a video")

    # an uploaded image (the one generated above) -> text (streamed), shown beside the text
    page.set_input_files("#file", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": png}])
    page.click("#to-text")
    sync_api.expect(page.locator("#upload-preview")).to_have_count(1)
    sync_api.expect(page.locator("#status")).to_contain_text("captioned", timeout=60_000)
    sync_api.expect(page.locator("#text-out")).to_have_count(1)
    sync_api.expect(page.locator("#error")).to_be_hidden()
    shot(page, tmp_path, "image-to-text")

    # a recording -> text
    t = np.arange(8000) / 16000
    wav = write_wav((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    page.set_input_files("#file", files=[{"name": "say.wav", "mimeType": "audio/wav", "buffer": wav}])
    page.click("#to-text")
    sync_api.expect(page.locator("#status")).to_contain_text("transcribed", timeout=60_000)

    # a file that is not an image: the server's message on the page, buttons usable again
    page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}])
    page.click("#to-text")
    sync_api.expect(page.locator("#error")).to_contain_text("not an image")
    sync_api.expect(page.locator("#to-image")).to_be_enabled()
    assert errors == []
    page.close()
