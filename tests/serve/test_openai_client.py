"""The official ``openai`` Python client against ``omnitok serve``: the shapes parse, and errors become the
client's own exception types with this server's messages."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from serve_helpers import KEY, Server

openai = pytest.importorskip("openai")


@pytest.fixture()
def client(server: Server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_and_images(client):
    from PIL import Image

    assert [m.id for m in client.models.list()] == ["omnitok"]
    out = client.images.generate(prompt="the digit two", n=2, size="32x32", response_format="b64_json",
                                 extra_body={"seed": 5, "guidance_scale": 2.0})
    assert len(out.data) == 2
    assert Image.open(io.BytesIO(base64.b64decode(out.data[0].b64_json))).size == (32, 32)


def test_speech_and_transcription(client):
    import soundfile as sf

    wav = client.audio.speech.create(model="omnitok", voice="alloy", input="two", response_format="wav",
                                     extra_body={"seconds": 0.5}).content
    audio, sr = sf.read(io.BytesIO(wav))
    assert sr == 16000 and abs(len(audio) / sr - 0.5) < 0.03
    text = client.audio.transcriptions.create(model="omnitok", file=("two.wav", wav, "audio/wav"))
    assert isinstance(text.text, str)
    plain = client.audio.transcriptions.create(model="omnitok", file=("two.wav", wav), response_format="text")
    assert isinstance(plain, str)


def test_chat_plain_and_streamed(client):
    from omnitok.io.image import encode_png

    png = encode_png(np.full((32, 32, 3), 200, dtype=np.uint8))
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}]}]
    out = client.chat.completions.create(model="omnitok", messages=messages, max_tokens=8, seed=2)
    assert out.choices[0].message.role == "assistant" and out.usage.total_tokens > 0
    stream = client.chat.completions.create(model="omnitok", messages=messages, max_tokens=8, seed=2, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == out.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == out.choices[0].finish_reason


def test_errors_are_the_clients_exceptions(client, server: Server):
    with pytest.raises(openai.BadRequestError, match="limit of 4"):
        client.images.generate(prompt="x", n=9)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="not supported"):
        client.audio.speech.create(model="omnitok", voice="alloy", input="x", response_format="mp3")
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
        wrong.models.list()
