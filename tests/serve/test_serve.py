"""``omnitok serve`` as a real process on a loopback port: every endpoint, the streaming format, the API key,
batching, and each kind of bad input (a 4xx in OpenAI's error shape, and the server goes on serving)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from serve_helpers import KEY, Server

pytest.importorskip("fastapi")


def png_bytes(size: int = 32, seed: int = 0) -> bytes:
    from omnitok.io.image import encode_png

    return encode_png(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def wav_bytes(seconds: float = 0.5, sr: int = 16000) -> bytes:
    from omnitok.io.audio import write_wav

    t = np.arange(int(seconds * sr)) / sr
    return write_wav((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    for name, (filename, data, ctype) in files.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def error_of(status: int, body: bytes) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body[:300])
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], err
    return err


def sse_events(body: bytes) -> list[str]:
    text = body.decode()
    assert text.endswith("\n\n"), text[-100:]
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: "):] for e in events]


# ----- listings and the key ----------------------------------------------------------------------------------
def test_health_models_and_page(server: Server):
    status, health = server.get_json("/health", key=None)
    assert status == 200 and health["status"] == "ok" and health["auth"] is True
    assert health["modalities"] == ["audio", "image", "text", "video"]
    status, models = server.get_json("/v1/models")
    assert status == 200 and models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["omnitok"] and models["data"][0]["object"] == "model"
    assert server.get_json("/v1/models/omnitok")[1]["id"] == "omnitok"
    status, _, body = server.request("GET", "/v1/models/gpt-4o")
    assert status == 404 and error_of(status, body)["code"] == "model_not_found"
    status, headers, page = server.request("GET", "/", key=None)
    assert status == 200 and headers["content-type"].startswith("text/html") and b"/v1/images/generations" in page


@pytest.mark.parametrize("key,code", [(None, "missing_api_key"), ("wrong-key", "invalid_api_key"),
                                      ("", "missing_api_key")])
def test_api_key_required(server: Server, key, code):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    for method, path, body in (("GET", "/v1/models", None),
                               ("POST", "/v1/images/generations", b'{"prompt": "seven"}')):
        status, _, out = server.request(method, path, body, headers, key=None)
        assert status == 401 and error_of(status, out)["code"] == code


# ----- the endpoints ------------------------------------------------------------------------------------------
def test_images_n_size_and_seed(server: Server):
    from PIL import Image

    status, _, body = server.post_json("/v1/images/generations", {"prompt": "the digit seven", "n": 2,
                                                                  "response_format": "b64_json", "seed": 3})
    assert status == 200, body
    out = json.loads(body)
    assert out["size"] == "32x32" and len(out["data"]) == 2 and isinstance(out["created"], int)
    imgs = [base64.b64decode(d["b64_json"]) for d in out["data"]]
    for b in imgs:
        assert Image.open(io.BytesIO(b)).size == (32, 32)
    again = json.loads(server.post_json("/v1/images/generations", {"prompt": "the digit seven", "n": 2,
                                                                   "seed": 3})[2])
    assert [base64.b64decode(d["b64_json"]) for d in again["data"]] == imgs  # a seeded request runs alone
    status, _, body = server.post_json("/v1/images/generations", {"prompt": "a three", "size": "16x24",
                                                                  "guidance_scale": 1.0, "temperature": 0.8})
    assert status == 200, body
    assert Image.open(io.BytesIO(base64.b64decode(json.loads(body)["data"][0]["b64_json"]))).size == (16, 24)


@pytest.mark.parametrize("fmt,ctype", [("wav", "audio/wav"), ("flac", "audio/flac")])
def test_speech(server: Server, fmt, ctype):
    import soundfile as sf

    status, headers, body = server.post_json("/v1/audio/speech", {"model": "omnitok", "input": "seven two",
                                                                  "voice": "alloy", "response_format": fmt,
                                                                  "seconds": 0.4})
    assert status == 200 and headers["content-type"] == ctype, body[:200]
    audio, sr = sf.read(io.BytesIO(body))
    assert sr == 16000 and abs(len(audio) / sr - 0.4) < 0.03 and np.isfinite(audio).all()
    status, _, body = server.post_json("/v1/audio/speech", {"input": "seven two"})  # a length from the words
    assert status == 200 and sf.read(io.BytesIO(body))[0].shape[0] > 0


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_transcriptions(server: Server, fmt):
    data, ctype = multipart({"model": "omnitok", "response_format": fmt, "temperature": "0"},
                            {"file": ("../../etc/tone.wav", wav_bytes(), "audio/wav")})
    status, headers, body = server.request("POST", "/v1/audio/transcriptions", data, {"Content-Type": ctype})
    assert status == 200, body
    if fmt == "json":
        assert isinstance(json.loads(body)["text"], str)
    else:
        assert headers["content-type"].startswith("text/plain")


def chat_body(**kw: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png_bytes()).decode()}},
               {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav_bytes(0.3)).decode(), "format": "wav"}}]
    return {"model": "omnitok", "messages": [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": content}], "max_tokens": 12, **kw}


def test_chat_text_image_audio(server: Server):
    status, _, body = server.post_json("/v1/chat/completions", chat_body(n=2))
    assert status == 200, body
    out = json.loads(body)
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-") and out["model"] == "omnitok"
    assert [c["index"] for c in out["choices"]] == [0, 1]
    for c in out["choices"]:
        assert c["message"]["role"] == "assistant" and isinstance(c["message"]["content"], str)
        assert c["finish_reason"] in ("stop", "length")
    u = out["usage"]
    assert u["prompt_tokens"] > 20 and 0 <= u["completion_tokens"] <= 24
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_chat_stream_matches_the_plain_answer(server: Server):
    plain = json.loads(server.post_json("/v1/chat/completions", chat_body(seed=11))[2])
    status, headers, body = server.post_json("/v1/chat/completions",
                                             chat_body(seed=11, stream=True, stream_options={"include_usage": True}))
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    with_choices = [c for c in chunks if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices)
    assert text == plain["choices"][0]["message"]["content"]  # same seed, same tokens
    assert with_choices[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert all(c["choices"][0]["finish_reason"] is None for c in with_choices[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


def test_video_mp4_and_b64(server: Server):
    from omnitok.io.video import read_mp4

    status, headers, body = server.post_json("/v1/videos/generations", {"prompt": "a moving digit four"})
    assert status == 200 and headers["content-type"] == "video/mp4", body[:200]
    assert read_mp4(body).shape == (5, 32, 32, 3)
    status, _, body = server.post_json("/v1/videos/generations", {"prompt": "a four", "n": 2,
                                                                  "response_format": "b64_json"})
    assert status == 200
    assert [read_mp4(base64.b64decode(d["b64_json"])).shape[0] for d in json.loads(body)["data"]] == [5, 5]


def test_concurrent_requests_share_a_batch(server: Server):
    before = server.get_json("/health", key=None)[1]["batches"]["count"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: server.post_json("/v1/images/generations", {"prompt": f"digit {i}"}),
                                range(8)))
    assert [r[0] for r in results] == [200] * 8
    batches = server.get_json("/health", key=None)[1]["batches"]
    assert batches["count"] - before < 8 and batches["max_rows"] >= 2  # fewer generate calls than requests


# ----- bad input ---------------------------------------------------------------------------------------------
IMG = "/v1/images/generations"
CHAT = "/v1/chat/completions"
SPEECH = "/v1/audio/speech"
MSG = [{"role": "user", "content": "hi"}]
BAD_JSON = [
    (IMG, b'{"prompt": "seven"', None, "not valid JSON"),
    (IMG, b"", None, "empty"),
    (IMG, b'["seven"]', None, "JSON object"),
    (IMG, {"prompt": 7}, "prompt", "valid string"),
    (IMG, {"prompt": "x", "n": "2"}, "n", "valid integer"),
    (IMG, {"prompt": "x", "n": 1.5}, "n", "valid integer"),
    (IMG, {"n": 1}, "prompt", "Missing required parameter"),
    (IMG, {"prompt": ""}, "prompt", "at least 1 character"),
    (IMG, {"prompt": "x", "n": 5}, "n", "limit of 4"),
    (IMG, {"prompt": "x" * 1001}, "prompt", "limit of 1000"),
    (IMG, {"prompt": "x", "size": "big"}, "size", "WIDTHxHEIGHT"),
    (IMG, {"prompt": "x", "method": "diffusion"}, "method", "next-token"),
    (IMG, {"prompt": "x", "method": "masked"}, "method", "no <|mask|> id"),
    (IMG, {"prompt": "x", "steps": 8}, "steps", "method 'masked' only"),
    (IMG, {"prompt": "x", "method": "masked", "steps": 0}, "steps", "greater than or equal to 1"),
    (IMG, {"prompt": "x", "size": "30x30"}, "size", "divisible"),
    (IMG, {"prompt": "x", "size": "4096x4096"}, "size", "limit"),
    (IMG, {"prompt": "x", "response_format": "url"}, "response_format", "not supported"),
    (IMG, {"prompt": "x", "stream": True}, "stream", "not supported"),
    (IMG, {"prompt": "x", "mystery": 1}, "mystery", "Unrecognized request argument"),
    (IMG, {"prompt": "x", "temperature": -1}, "temperature", "greater than or equal"),
    (IMG, {"prompt": "x", "seed": 2**70}, "seed", "less than"),
    (IMG, {"prompt": "x", "n": True}, "n", "valid integer"),
    (SPEECH, {"input": "x", "response_format": "mp3"}, "response_format", "not supported"),
    (SPEECH, {"input": "x", "speed": 2.0}, "speed", "not supported"),
    (SPEECH, {"input": "x" * 4097}, "input", "limit of 4096"),
    (SPEECH, {"input": "x", "seconds": 600}, "seconds", "limit"),
    (CHAT, {"messages": MSG}, "model", "Missing required parameter"),
    (CHAT, {"model": "omnitok", "messages": "hi"}, "messages", "valid list"),
    (CHAT, {"model": "omnitok", "messages": []}, "messages", "at least 1"),
    (CHAT, {"model": "omnitok", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role", "expected one of"),
    (CHAT, {"model": "omnitok", "messages": [{"role": "user", "content": 5}]}, "messages.0.content", "string or"),
    (CHAT, {"model": "omnitok", "messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]},
     "messages.0.content.0", "expected a part"),
    (CHAT, {"model": "omnitok", "messages": MSG, "stop": ["\n"]}, "stop", "not supported"),
    (CHAT, {"model": "omnitok", "messages": MSG, "max_tokens": 100000}, "max_tokens", "context"),
    (CHAT, {"model": "omnitok", "messages": MSG, "n": 5}, "n", "limit of 4"),
    (CHAT, {"model": "omnitok", "messages": MSG, "stream": "yes"}, "stream", "valid boolean"),
]


@pytest.mark.parametrize("path,body,param,message", BAD_JSON, ids=[f"{i}" for i in range(len(BAD_JSON))])
def test_bad_json_requests(server: Server, path, body, param, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, out = server.request("POST", path, raw, {"Content-Type": "application/json"})
    err = error_of(status, out)
    assert status == 400 and headers["content-type"] == "application/json"
    assert message in err["message"] and err["param"] == param and err["type"] == "invalid_request_error", err


def image_part(url: str) -> dict[str, Any]:
    return {"model": "omnitok", "messages": [{"role": "user", "content": [{"type": "image_url",
                                                                           "image_url": {"url": url}}]}]}


@pytest.mark.parametrize("url,message", [
    ("file:///etc/passwd", "only base64 data: URIs"),
    ("http://127.0.0.1:1/x.png", "only base64 data: URIs"),
    ("/etc/hostname", "only base64 data: URIs"),
    ("data:image/png;base64,@@@", "not valid base64"),
    ("data:image/png;base64," + base64.b64encode(b"this is not an image").decode(), "not an image"),
    ("data:image/png;base64," + base64.b64encode(png_bytes(8)[:40]).decode(), "image"),
])
def test_chat_refuses_non_images_and_paths(server: Server, url, message):
    status, _, out = server.post_json(CHAT, image_part(url))
    err = error_of(status, out)
    assert status == 400 and message in err["message"] and err["param"].startswith("messages.0.content.0"), err


def test_unknown_model_everywhere(server: Server):
    for path, body in ((IMG, {"prompt": "x", "model": "dall-e-3"}), (SPEECH, {"input": "x", "model": "tts-1"}),
                       (CHAT, {"model": "gpt-4o", "messages": MSG})):
        status, _, out = server.post_json(path, body)
        assert status == 404 and error_of(status, out)["code"] == "model_not_found"
    data, ctype = multipart({"model": "whisper-1"}, {"file": ("a.wav", wav_bytes(), "audio/wav")})
    status, _, out = server.request("POST", "/v1/audio/transcriptions", data, {"Content-Type": ctype})
    assert status == 404 and error_of(status, out)["code"] == "model_not_found"


@pytest.mark.parametrize("fields,files,param,message", [
    ({"model": "omnitok"}, {"file": ("notes.wav", b"just some text, not audio", "audio/wav")}, "file",
     "cannot decode audio"),
    ({"model": "omnitok"}, {"file": ("a.png", png_bytes(), "image/png")}, "file", "cannot decode audio"),
    ({"model": "omnitok"}, {}, "file", "Missing required parameter"),
    ({}, {"file": ("a.wav", wav_bytes(), "audio/wav")}, "model", "Missing required parameter"),
    ({"model": "omnitok", "response_format": "srt"}, {"file": ("a.wav", wav_bytes(), "audio/wav")},
     "response_format", "not supported"),
    ({"model": "omnitok", "temperature": "hot"}, {"file": ("a.wav", wav_bytes(), "audio/wav")}, "temperature",
     "expected a number"),
    ({"model": "omnitok", "path": "/etc/passwd"}, {"file": ("a.wav", wav_bytes(), "audio/wav")}, "path",
     "Unrecognized request argument"),
])
def test_bad_transcriptions(server: Server, fields, files, param, message):
    data, ctype = multipart(fields, files)
    status, _, out = server.request("POST", "/v1/audio/transcriptions", data, {"Content-Type": ctype})
    err = error_of(status, out)
    assert status == 400 and err["param"] == param and message in err["message"], err


def test_malformed_multipart(server: Server):
    status, _, out = server.request("POST", "/v1/audio/transcriptions", b"--nope\r\n garbage",
                                    {"Content-Type": "multipart/form-data; boundary=zzz"})
    assert status == 400 and "multipart" in error_of(status, out)["message"]
    status, _, out = server.request("POST", "/v1/audio/transcriptions", b'{"file": "x"}',
                                    {"Content-Type": "application/json"})
    assert status == 400 and "multipart/form-data" in error_of(status, out)["message"]


def test_oversize_bodies(server: Server):
    big = json.dumps({"prompt": "x" * (9 << 20)}).encode()  # over the default 8 MiB
    status, _, out = server.request("POST", IMG, big, {"Content-Type": "application/json"})
    assert status == 413 and error_of(status, out)["code"] == "request_too_large"
    # no Content-Length (chunked): refused while it is read
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("POST", IMG)
        conn.putheader("Authorization", f"Bearer {KEY}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        piece = b"x" * (1 << 20)
        for _ in range(9):
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        status, out = r.status, r.read()
    finally:
        conn.close()
    assert status == 413 and error_of(status, out)["code"] == "request_too_large"


def test_unknown_endpoint_and_method(server: Server):
    status, _, out = server.request("GET", "/v1/images/edits")
    assert status in (404, 405) and error_of(status, out)
    status, _, out = server.request("GET", IMG)
    assert status == 405 and "not allowed" in error_of(status, out)["message"]


def test_still_serving_after_bad_input(server: Server):
    """After every refusal above (the tests run in file order), the same process answers a real request."""
    assert server.proc.poll() is None
    status, _, body = server.post_json(CHAT, {"model": "omnitok", "messages": MSG, "max_tokens": 4})
    assert status == 200 and json.loads(body)["choices"][0]["message"]["role"] == "assistant"
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]  # no request made the server fail
