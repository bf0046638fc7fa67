"""The HTTP API (OpenAI's request and response shapes) and the web page, over one loaded model.

==============================  ==========================================================================
``GET  /``                      the web page (``page.html``: plain HTML + JS)
``GET  /health``                ``{"status": "ok", ...}`` and batch statistics (no API key needed)
``GET  /v1/models``             the one served model, OpenAI's list shape (also ``/v1/models/{id}``)
``POST /v1/images/generations`` text -> ``n`` PNG images as ``b64_json``
``POST /v1/audio/speech``       text -> WAV or FLAC bytes
``POST /v1/audio/transcriptions`` multipart ``file`` (WAV / FLAC / OGG) -> text (``json`` or ``text``)
``POST /v1/chat/completions``   text, ``image_url`` (data URI) and ``input_audio`` parts -> text; ``stream``
``POST /v1/videos/generations`` text -> MP4 bytes (this server's own endpoint)
==============================  ==========================================================================

Every refusal is a 4xx with OpenAI's ``{"error": {"message", "type", "param", "code"}}``; an unexpected failure
is a 500 in the same shape, and the server goes on serving. Uploads are decoded in memory: no request names a
file, URL or path that the server would open or write.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnitok.generation.generate import GenerationOutput, default_grid, recorded_defaults
from omnitok.serve.engine import Batcher, Job, ServedModel
from omnitok.serve.protocol import (
    APIError,
    ChatRequest,
    ImageRequest,
    Limits,
    Part,
    SpeechRequest,
    VideoRequest,
    decode_base64,
    decode_data_uri,
    error_body,
    parse_json,
    parse_multipart,
    parse_size,
)
from omnitok.vocab.document import Audio, Document, Image, Segment, Text

__all__ = ["create_app"]

log = logging.getLogger("omnitok.serve")

CHAT_MAX_TOKENS = 128  # default completion length when the request sets none
TRANSCRIBE_MAX_TOKENS = 64
SPEECH_SECONDS = (0.3, 0.45)  # default speech length when the model cannot end it: 0.3 s + 0.45 s per word
AUDIO_FORMATS = {"wav": ("WAV", "audio/wav"), "flac": ("FLAC", "audio/flac")}
TRANSCRIPTION_FIELDS = {"file", "model", "language", "prompt", "response_format", "temperature", "stream",
                        "timestamp_granularities[]", "include[]", "chunking_strategy"}
MESSAGE_ROLES = ("system", "developer", "user", "assistant")


# ----- the ASGI layer: body size and API key, before any handler runs --------------------------------------
class _Guard:
    """Refuses a body over the limit (by Content-Length, or while it is read) and, when an API key is set, a
    /v1 request without ``Authorization: Bearer <key>``."""

    def __init__(self, app: Any, max_body: int, api_key: str | None) -> None:
        self.app, self.max_body, self.api_key = app, max_body, api_key

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path", "").startswith("/v1"):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                await _send_error(send, 401, "no API key: send the header 'Authorization: Bearer <key>'",
                                  code="missing_api_key")
                return
            if not hmac.compare_digest(auth[7:].strip().encode(), self.api_key.encode()):
                await _send_error(send, 401, "incorrect API key provided", code="invalid_api_key")
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send_error(send, 400, "Content-Length is not a number")
                return
            if n > self.max_body:
                await _send_error(send, 413, f"the request body is {n} bytes, more than this server's limit of "
                                             f"{self.max_body} bytes", code="request_too_large")
                return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise APIError(413, f"the request body is more than this server's limit of {self.max_body} "
                                        "bytes", code="request_too_large")
            return msg

        await self.app(scope, counted, send)


async def _send_error(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, message: str,
                      code: str | None = None) -> None:
    body = json.dumps(error_body(message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ----- media in and out ------------------------------------------------------------------------------------
def _image_segment(served: ServedModel, data: bytes, param: str, limits: Limits) -> Image:
    """Uploaded image bytes -> an Image segment at the size the image codec was trained on."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    from omnitok.io.image import decode_image, to_channels

    try:
        with PILImage.open(io.BytesIO(data)) as im:  # reads the header only
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise APIError(400, f"{param}: not an image (PNG, JPEG or WebP expected)", param, "invalid_image") \
            from None
    if w * h > limits.max_image_pixels:
        raise APIError(400, f"{param}: {w}x{h} pixels is more than this server's limit of "
                            f"{limits.max_image_pixels} pixels", param, "invalid_image")
    size = served.image_size
    try:
        x = decode_image(data, size=size, name=param)  # (3, H, W) in [-1, 1]
    except ValueError as e:
        raise APIError(400, str(e), param, "invalid_image") from None
    channels = int((getattr(served.vocab.codecs["image"], "config", {}) or {}).get("in_channels", 3))
    return Image(data=to_channels(x, channels))


def _audio_segment(served: ServedModel, data: bytes, param: str, limits: Limits) -> Audio:
    """Uploaded audio bytes (WAV / FLAC / OGG) -> an Audio segment at the codec's sample rate."""
    from omnitok.io.audio import read_audio

    try:
        x, sr = read_audio(data, target_sr=served.audio_rate, name=param)
    except ValueError as e:
        raise APIError(400, f"{e} (WAV, FLAC or OGG expected)", param, "invalid_audio") from None
    if len(x) / sr > limits.max_audio_seconds:
        raise APIError(400, f"{param}: {len(x) / sr:.1f} s of audio is more than this server's limit of "
                            f"{limits.max_audio_seconds:g} s", param, "invalid_audio")
    return Audio(data=torch.from_numpy(np.ascontiguousarray(x))[None])  # (1, T)


def _png(seg: Segment) -> str:
    from omnitok.io.image import encode_png, tensor_to_uint8, to_channels

    return base64.b64encode(encode_png(tensor_to_uint8(to_channels(seg.data.float(), 3)))).decode()


def _audio_bytes(served: ServedModel, seg: Segment, fmt: str) -> bytes:
    from omnitok.io.audio import encode_audio

    return encode_audio(seg.data.reshape(-1).float().numpy(), served.audio_rate, format=AUDIO_FORMATS[fmt][0],
                        name="speech")


def _mp4(served: ServedModel, seg: Segment) -> bytes:
    from omnitok.io.image import tensor_to_uint8, to_channels
    from omnitok.io.video import write_mp4

    x = seg.data.float()
    frames = tensor_to_uint8(to_channels(x.transpose(0, 1), 3))  # (T, H, W, 3)
    return write_mp4(frames, served.video_fps, name="video")


# ----- the app ---------------------------------------------------------------------------------------------
def create_app(served: ServedModel, batcher: Batcher, *, api_key: str | None = None,
               limits: Limits | None = None) -> FastAPI:
    """The FastAPI app over a loaded model and its running batcher."""
    limits = limits or Limits()
    app = FastAPI(title="omnitok", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Guard, max_body=limits.max_body_bytes, api_key=api_key)
    page = resources.files("omnitok.serve").joinpath("page.html").read_text(encoding="utf-8")
    max_seq = int(served.model.config.max_seq_len)
    # speech length: the model ends the speech itself when its folder recorded that (generation_config.json) or
    # the layout allows it; otherwise a length prior from the words, capped by the longest training clip
    audio = served.vocab.entries.get("audio")
    rec_audio = recorded_defaults(served.model, "audio")
    speech_until_end = audio is not None and (bool(rec_audio.get("until_end")) or audio.num_codebooks == 1
                                              or served.vocab.audio_pattern != "delay")
    speech_cap = (rec_audio.get("grid") or default_grid(served.vocab, "audio", min(400, max_seq // 2)) or (0,))[0]
    rec_image = recorded_defaults(served.model, "image").get("grid")
    rec_video = recorded_defaults(served.model, "video").get("grid")

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        msg = {404: f"no such endpoint: {request.method} {request.url.path}",
               405: f"method {request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return JSONResponse(error_body(msg, code="not_found" if e.status_code == 404 else None),
                            status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, e: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse(error_body(f"the server failed on this request ({type(e).__name__}: {e})",
                                       "server_error"), status_code=500)

    def check_model(name: str | None) -> None:
        if name is not None and name != served.name:
            raise APIError(404, f"The model '{name}' does not exist (this server serves '{served.name}')", "model",
                           "model_not_found")

    def need(modality: str) -> None:
        if modality not in served.vocab.codecs:
            raise APIError(400, f"the served vocabulary has no {modality} codec", code="unsupported_modality")

    def check_n(n: int) -> None:
        if n > limits.max_n:
            raise APIError(400, f"n={n} is more than this server's limit of {limits.max_n}", "n", "invalid_value")

    def sampling(body: Any) -> dict[str, Any]:
        s = {"cfg_scale": getattr(body, "guidance_scale", None), "temperature": body.temperature,
             "top_k": body.top_k, "top_p": body.top_p, "seed": body.seed}
        if getattr(body, "method", "next-token") == "masked":
            if served.vocab.specials.mask is None:
                raise APIError(400, "method 'masked': this model's vocabulary has no <|mask|> id (it was not "
                                    "trained for masked decoding); use method 'next-token'", "method", "invalid_value")
            s.update(method="masked", steps=body.steps)
        elif getattr(body, "steps", None) is not None:
            raise APIError(400, "steps applies to method 'masked' only", "steps", "invalid_value")
        return {k: v for k, v in s.items() if v is not None}

    async def run(job: Job) -> GenerationOutput:
        try:
            fut = batcher.submit(job)
        except ValueError as e:
            raise APIError(400, str(e)) from None
        try:
            return await asyncio.wrap_future(fut)
        except ValueError as e:  # the prompt does not fit the model, a size the codec cannot make, ...
            raise APIError(400, str(e)) from None

    async def body_json(request: Request, model: type) -> Any:
        return parse_json(await request.body(), model)  # whatever the Content-Type says (curl -d sends a form's)

    async def generation_body(request: Request, model: type, produces: str) -> Any:
        """The JSON body of a request for ``n`` outputs of modality ``produces``, checked: this server's model,
        ``n`` within its limit, a codec for ``produces`` in the served vocabulary."""
        body = await body_json(request, model)
        check_model(body.model)
        check_n(body.n)
        need(produces)
        return body

    # ----- pages and listings ------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        rows = batcher.batches
        return {"status": "ok", "model": served.name, "modalities": served.modalities, "auth": api_key is not None,
                "batches": {"count": len(rows), "max_rows": max(rows, default=0),
                            "mean_rows": round(sum(rows) / len(rows), 3) if rows else 0.0}}

    def model_card() -> dict[str, Any]:
        return {"id": served.name, "object": "model", "created": served.created, "owned_by": "omnitok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}")
    async def one_model(model_id: str) -> dict[str, Any]:
        check_model(model_id)
        return model_card()

    # ----- text -> image / video ---------------------------------------------------------------------------
    def visual_grid(body: ImageRequest, produce: str) -> tuple[int, ...]:
        if len(body.prompt) > limits.max_prompt_chars:
            raise APIError(400, f"prompt: {len(body.prompt)} characters is more than this server's limit of "
                                f"{limits.max_prompt_chars}", "prompt", "invalid_value")
        hw = parse_size(body.size)
        sp = served.vocab.specials
        recorded = rec_image if produce == "image" else rec_video
        try:
            if hw is None and recorded:  # the grid the model was trained on (generation_config.json)
                grid: tuple[int, ...] = tuple(recorded)
            elif produce == "image":
                grid = served.image_grid(*(hw or (served.image_size or 32,) * 2))
            else:
                grid = served.video_grid(*(hw or (served.video_size or 32,) * 2))
        except ValueError as e:
            raise APIError(400, f"size: {e}", "size", "invalid_value") from None
        if grid[-2] > sp.max_height or grid[-1] > sp.max_width or (produce == "video" and grid[0] > sp.max_frames):
            raise APIError(400, f"size {body.size}: a code grid of {grid} is more than the vocabulary's limit "
                                f"({sp.max_height}x{sp.max_width})", "size", "invalid_value")
        return grid

    @app.post("/v1/images/generations")
    async def images(request: Request) -> dict[str, Any]:
        body: ImageRequest = await generation_body(request, ImageRequest, "image")
        grid = visual_grid(body, "image")
        out = await run(Job("image", [Text(text=body.prompt)], body.n, {"grid": grid, **sampling(body)}))
        data = await run_in_threadpool(lambda: [{"b64_json": _png(s), "revised_prompt": None} for s in out.outputs])
        f = getattr(served.vocab.codecs["image"], "factor", 1)
        return {"created": int(time.time()), "data": data, "output_format": "png",
                "size": f"{grid[1] * f}x{grid[0] * f}"}

    @app.post("/v1/videos/generations", response_model=None)
    async def videos(request: Request) -> Response | dict[str, Any]:
        body: VideoRequest = await generation_body(request, VideoRequest, "video")
        if body.response_format == "mp4" and body.n != 1:
            raise APIError(400, "response_format 'mp4' returns one video: use n=1, or response_format 'b64_json'",
                           "n", "invalid_value")
        grid = visual_grid(body, "video")
        out = await run(Job("video", [Text(text=body.prompt)], body.n, {"grid": grid, **sampling(body)}))
        clips = await run_in_threadpool(lambda: [_mp4(served, s) for s in out.outputs])
        if body.response_format == "mp4":
            return Response(clips[0], media_type="video/mp4")
        return {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(c).decode()} for c in clips],
                "output_format": "mp4"}

    # ----- text -> speech, speech -> text ------------------------------------------------------------------
    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        body: SpeechRequest = await body_json(request, SpeechRequest)
        check_model(body.model)
        need("audio")
        if len(body.input) > limits.max_input_chars:
            raise APIError(400, f"input: {len(body.input)} characters is more than this server's limit of "
                                f"{limits.max_input_chars}", "input", "invalid_value")
        settings = sampling(body)
        if body.seconds is not None:
            if body.seconds > limits.max_audio_seconds:
                raise APIError(400, f"seconds: {body.seconds:g} is more than this server's limit of "
                                    f"{limits.max_audio_seconds:g}", "seconds", "invalid_value")
            settings["grid"] = (max(1, round(body.seconds * served.audio_frames_per_second)),)
        elif speech_until_end:  # the model ends the speech itself, within the default length
            settings["until_end"] = True
            settings["grid"] = (speech_cap,)
        else:  # a length prior from the words (the delay pattern cannot end early)
            words = len(body.input.split())
            frames = round((SPEECH_SECONDS[0] + SPEECH_SECONDS[1] * words) * served.audio_frames_per_second)
            settings["grid"] = (max(1, min(frames, speech_cap)),)
        out = await run(Job("audio", [Text(text=body.input)], 1, settings))
        audio = await run_in_threadpool(_audio_bytes, served, out.outputs[0], body.response_format)
        return Response(audio, media_type=AUDIO_FORMATS[body.response_format][1])

    @app.post("/v1/audio/transcriptions", response_model=None)
    async def transcriptions(request: Request) -> Response | dict[str, Any]:
        parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
        fields: dict[str, Part] = {}
        for p in parts:
            if p.name not in TRANSCRIPTION_FIELDS:
                raise APIError(400, f"Unrecognized request argument supplied: {p.name}", p.name)
            fields[p.name] = p

        def text_field(name: str, default: str | None = None) -> str | None:
            p = fields.get(name)
            return p.data.decode("utf-8", "replace").strip() if p is not None else default

        if "file" not in fields or fields["file"].filename is None:
            raise APIError(400, "Missing required parameter: 'file' (an audio file upload).", "file",
                           "missing_required_parameter")
        model = text_field("model")
        if not model:
            raise APIError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        check_model(model)
        need("audio")
        need("text")
        fmt = text_field("response_format", "json")
        if fmt not in ("json", "text"):
            raise APIError(400, f"response_format={fmt!r} is not supported by this server (supported: 'json', "
                                "'text')", "response_format", "invalid_value")
        if text_field("stream", "false").lower() not in ("false", "0", ""):
            raise APIError(400, "stream=true is not supported for transcriptions", "stream", "invalid_value")
        settings: dict[str, Any] = {"max_new_tokens": TRANSCRIBE_MAX_TOKENS}
        temp = text_field("temperature")
        if temp:
            try:
                t = float(temp)
            except ValueError:
                raise APIError(400, f"temperature: expected a number, got {temp!r}", "temperature",
                               "invalid_value") from None
            if not 0.0 <= t <= 2.0:
                raise APIError(400, f"temperature: expected 0 to 2, got {t:g}", "temperature", "invalid_value")
            settings["temperature"] = t
        seg = await run_in_threadpool(_audio_segment, served, fields["file"].data, "file", limits)
        out = await run(Job("text", [seg], 1, settings))
        text = out.outputs[0].text or ""
        if fmt == "text":
            return PlainTextResponse(text)
        return {"text": text}

    # ----- chat ---------------------------------------------------------------------------------------------
    def chat_prompt(body: ChatRequest) -> list[Segment]:
        """messages -> prompt segments in order: text (adjacent texts joined by newlines), images, audio.
        Roles are not marked: the model was trained on (condition, output) pairs, not dialogues."""
        segs: list[Segment] = []
        texts: list[str] = []
        chars = 0

        def flush() -> None:
            if texts:
                segs.append(Text(text="\n".join(texts)))
                texts.clear()

        for i, msg in enumerate(body.messages):
            where = f"messages.{i}"
            extra = set(msg) - {"role", "content", "name"}
            if extra:
                raise APIError(400, f"{where}: unsupported field(s) {sorted(extra)}", where, "invalid_value")
            if msg.get("role") not in MESSAGE_ROLES:
                raise APIError(400, f"{where}.role: expected one of {list(MESSAGE_ROLES)}, got {msg.get('role')!r}",
                               f"{where}.role", "invalid_value")
            content = msg.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if not isinstance(content, list):
                raise APIError(400, f"{where}.content: expected a string or a list of parts", f"{where}.content",
                               "invalid_value")
            for j, part in enumerate(content):
                at = f"{where}.content.{j}"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    chars += len(part["text"])
                    if chars > limits.max_chat_chars:
                        raise APIError(400, f"the messages hold more than this server's limit of "
                                            f"{limits.max_chat_chars} characters of text", at, "invalid_value")
                    if part["text"]:
                        texts.append(part["text"])
                elif kind == "image_url" and isinstance(part.get("image_url"), dict):
                    need("image")
                    flush()
                    data = decode_data_uri(part["image_url"].get("url"), f"{at}.image_url.url")
                    segs.append(_image_segment(served, data, f"{at}.image_url.url", limits))
                elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
                    need("audio")
                    flush()
                    a = part["input_audio"]
                    if a.get("format") not in ("wav", "flac"):
                        raise APIError(400, f"{at}.input_audio.format: expected 'wav' or 'flac', got "
                                            f"{a.get('format')!r}", f"{at}.input_audio.format", "invalid_value")
                    if not isinstance(a.get("data"), str):
                        raise APIError(400, f"{at}.input_audio.data: expected base64 audio", f"{at}.input_audio.data",
                                       "invalid_value")
                    data = decode_base64(a["data"], f"{at}.input_audio.data")
                    segs.append(_audio_segment(served, data, f"{at}.input_audio.data", limits))
                else:
                    raise APIError(400, f"{at}: expected a part {{'type': 'text', 'text': ...}}, "
                                        "{'type': 'image_url', 'image_url': {'url': 'data:...'}} or "
                                        "{'type': 'input_audio', 'input_audio': {'data': ..., 'format': ...}}",
                                   at, "invalid_value")
        flush()
        if not segs:
            raise APIError(400, "messages: no content to condition on", "messages", "invalid_value")
        return segs

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> StreamingResponse | dict[str, Any]:
        body: ChatRequest = await generation_body(request, ChatRequest, "text")
        max_new = body.max_completion_tokens or body.max_tokens or CHAT_MAX_TOKENS
        if max_new >= max_seq:
            raise APIError(400, f"max_tokens={max_new} is more than the model's context of {max_seq} ids",
                           "max_tokens", "invalid_value")
        prompt = await run_in_threadpool(chat_prompt, body)
        settings = {"max_new_tokens": max_new, **sampling(body)}
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def usage(out: GenerationOutput) -> dict[str, int]:
            p = len(served.vocab.encode_prompt(Document(list(prompt), bos=True, eos=False), "text"))
            c = sum(len(i) - 1 for i in out.ids)
            return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

        def finish(ids: torch.Tensor) -> str:
            return "length" if len(ids) - 1 >= max_new else "stop"

        if not body.stream:
            out = await run(Job("text", prompt, body.n, settings))
            choices = [{"index": r, "message": {"role": "assistant", "content": seg.text or ""},
                        "finish_reason": finish(ids), "logprobs": None}
                       for r, (seg, ids) in enumerate(zip(out.outputs, out.ids))]
            return {"id": cid, "object": "chat.completion", "created": created, "model": served.name,
                    "choices": choices, "usage": usage(out)}

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue()
        job = Job("text", prompt, body.n, settings,
                  on_text=lambda r, s: loop.call_soon_threadsafe(queue.put_nowait, ("text", r, s)))
        try:
            fut = batcher.submit(job)
        except ValueError as e:
            raise APIError(400, str(e)) from None
        fut.add_done_callback(lambda f: loop.call_soon_threadsafe(queue.put_nowait, ("done", -1, "")))
        first = await queue.get()  # an error before the first token is still a plain 4xx response
        if first[0] == "done" and fut.exception() is not None:
            e = fut.exception()
            if isinstance(e, ValueError):
                raise APIError(400, str(e))
            raise e

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": served.name,
                   "choices": choices, **extra}
            return f"data: {json.dumps(obj)}\n\n"

        async def events() -> AsyncIterator[str]:
            sent = [""] * body.n
            for r in range(body.n):
                yield chunk([{"index": r, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            item = first
            while item[0] == "text":
                _, r, s = item
                sent[r] += s
                yield chunk([{"index": r, "delta": {"content": s}, "finish_reason": None}])
                item = await queue.get()
            if fut.exception() is not None:
                e = fut.exception()
                yield f"data: {json.dumps(error_body(str(e), 'server_error'))}\n\n"
                yield "data: [DONE]\n\n"
                return
            out = fut.result()
            for r, (seg, ids) in enumerate(zip(out.outputs, out.ids)):
                rest = (seg.text or "")[len(sent[r]):] if (seg.text or "").startswith(sent[r]) else ""
                delta = {"content": rest} if rest else {}
                yield chunk([{"index": r, "delta": delta, "finish_reason": finish(ids)}])
            if (body.stream_options or {}).get("include_usage"):
                yield chunk([], usage=usage(out))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
