"""Request bodies in OpenAI's shapes, errors in OpenAI's error shape, and the parsing of uploads (in memory only).

Fields OpenAI documents but this server does not implement are accepted when they carry their default (or, for
``user``, ``store``, ``metadata`` and the like, ignored, as OpenAI ignores them for models that do not use them);
any other value, and any field OpenAI does not document (except this server's own sampling fields: ``seed``,
``guidance_scale``, ``temperature``, ``top_k``, ``top_p``, ``seconds``), is a 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["APIError", "ChatRequest", "ImageRequest", "Limits", "Part", "SpeechRequest", "VideoRequest",
           "decode_base64", "decode_data_uri", "error_body", "parse_json", "parse_multipart", "parse_size", "validate"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; anything over is a 4xx before any work is done."""

    max_body_bytes: int = 8 << 20  # a request body (JSON or multipart upload)
    max_n: int = 4  # outputs per request (images, chat choices)
    max_prompt_chars: int = 1000  # an image / video prompt (OpenAI's DALL-E 2 limit)
    max_input_chars: int = 4096  # text to speak (OpenAI's speech limit)
    max_chat_chars: int = 32768  # all text parts of a chat request
    max_image_pixels: int = 4096 * 4096  # an uploaded image, before it is resized for the codec
    max_audio_seconds: float = 30.0  # an uploaded recording / requested speech


class APIError(Exception):
    """A request the server refuses: ``status`` and OpenAI's ``{"error": {message, type, param, code}}``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _must_be(value: Any, allowed: tuple[Any, ...], name: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported by this server (supported: "
                         f"{', '.join(repr(a) for a in allowed)})")
    return value


class _Sampling(_Body):
    """This server's own fields (OpenAI's image and speech endpoints have no sampling settings)."""

    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64)  # what torch's generator takes
    guidance_scale: float | None = Field(default=None, ge=0.0, le=50.0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)


class ImageRequest(_Sampling):
    prompt: str = Field(min_length=1)
    model: str | None = None
    n: int = Field(default=1, ge=1)
    size: str | None = None  # "WxH" pixels or "auto"; default: the size the image codec was trained on
    response_format: str = "b64_json"
    output_format: str = "png"
    stream: bool = False
    quality: str | None = None  # ignored (one quality)
    style: str | None = None  # ignored
    background: str | None = None  # ignored
    moderation: str | None = None  # ignored
    user: str | None = None  # ignored
    # this server's own: "next-token" (one forward per code) or "masked" (MaskGIT-style parallel decoding in
    # ``steps`` forwards; a model trained with masked-image documents, a vocabulary with <|mask|>)
    method: str = "next-token"
    steps: int | None = Field(default=None, ge=1, le=64)

    @field_validator("response_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        return _must_be(v, ("b64_json",), "response_format")

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        return _must_be(v, ("next-token", "masked"), "method")

    @field_validator("output_format")
    @classmethod
    def _out(cls, v: str) -> str:
        return _must_be(v, ("png",), "output_format")

    @field_validator("stream")
    @classmethod
    def _stream(cls, v: bool) -> bool:
        return _must_be(v, (False,), "stream")


class VideoRequest(ImageRequest):
    """``POST /v1/videos/generations``: this server's own (OpenAI has no synchronous text -> video call).
    ``response_format`` ``mp4`` (default) answers with the mp4 bytes, ``b64_json`` with images' JSON shape."""

    response_format: str = "mp4"
    output_format: str = "mp4"

    @field_validator("response_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        return _must_be(v, ("mp4", "b64_json"), "response_format")

    @field_validator("output_format")
    @classmethod
    def _out(cls, v: str) -> str:
        return _must_be(v, ("mp4",), "output_format")


class SpeechRequest(_Sampling):
    input: str = Field(min_length=1)
    model: str | None = None
    voice: str | dict[str, Any] | None = None  # ignored: the model speaks in the voices it learned
    instructions: str | None = None  # ignored (as OpenAI does for its tts-1 models)
    response_format: str = "wav"
    speed: float = 1.0
    stream_format: str = "audio"
    seconds: float | None = Field(default=None, gt=0.0)  # exact length; default: the model ends the speech itself

    @field_validator("response_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        return _must_be(v, ("wav", "flac"), "response_format")

    @field_validator("speed")
    @classmethod
    def _speed(cls, v: float) -> float:
        return _must_be(v, (1.0,), "speed")

    @field_validator("stream_format")
    @classmethod
    def _sf(cls, v: str) -> str:
        return _must_be(v, ("audio",), "stream_format")


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``. ``messages[].content``: a string or parts ``text``, ``image_url`` (a
    ``data:`` URI) and ``input_audio`` (base64 wav / flac)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool = False
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    user: str | None = None  # ignored
    store: bool | None = None  # ignored
    metadata: dict[str, Any] | None = None  # ignored
    service_tier: str | None = None  # ignored

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: Any) -> Any:
        return _must_be(v, (None, []), "stop")

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _penalty(cls, v: float) -> float:
        return _must_be(v, (0.0,), "frequency_penalty / presence_penalty")

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, v: bool) -> bool:
        return _must_be(v, (False,), "logprobs")

    @field_validator("response_format")
    @classmethod
    def _rf(cls, v: Any) -> Any:
        return _must_be(v, (None, {"type": "text"}), "response_format")

    @field_validator("modalities")
    @classmethod
    def _mod(cls, v: Any) -> Any:
        return _must_be(v, (None, ["text"]), "modalities")


def parse_json(raw: bytes, model: type[BaseModel]) -> Any:
    """Request bytes -> a validated body, or an APIError(400) naming the first bad field."""
    if not raw.strip():
        raise APIError(400, "the request body is empty; expected a JSON object")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(obj).__name__}")
    return validate(obj, model)


def validate(obj: dict[str, Any], model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err.get("loc", ())) or None
        if err.get("type") == "extra_forbidden":
            raise APIError(400, f"Unrecognized request argument supplied: {param}", param) from None
        if err.get("type") == "missing":
            raise APIError(400, f"Missing required parameter: '{param}'.", param, "missing_required_parameter") \
                from None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise APIError(400, f"{param}: {msg}", param, "invalid_value") from None


SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def parse_size(size: str | None) -> tuple[int, int] | None:
    """"WxH" -> (height, width) pixels; None / "auto" -> None (the default size)."""
    if size is None or size == "auto":
        return None
    m = SIZE.match(size)
    if not m:
        raise APIError(400, f"size: expected 'WIDTHxHEIGHT' in pixels (e.g. '32x32') or 'auto', got {size!r}",
                       "size", "invalid_value")
    return int(m.group(2)), int(m.group(1))


def decode_base64(data: str, param: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{param}: not valid base64", param, "invalid_value") from None


DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,(.*)$", re.DOTALL)


def decode_data_uri(url: Any, param: str) -> bytes:
    """A ``data:<mime>;base64,<data>`` URI -> bytes. Any other URL is refused: the server fetches nothing."""
    if not isinstance(url, str):
        raise APIError(400, f"{param}: expected a string", param, "invalid_value")
    m = DATA_URI.match(url)
    if not m:
        raise APIError(400, f"{param}: only base64 data: URIs are accepted (the server opens no URL or file), got "
                            f"{url[:40]!r}", param, "invalid_value")
    return decode_base64(m.group(3), param)


@dataclass
class Part:
    """One multipart/form-data part."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def parse_multipart(raw: bytes, content_type: str, max_parts: int = 32) -> list[Part]:
    """multipart/form-data bytes -> parts, all in memory (nothing is spooled to a file)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise APIError(400, "expected a multipart/form-data body with a boundary (Content-Type header)")
    parts: list[dict[str, Any]] = []
    field: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        if len(parts) >= max_parts:
            raise APIError(400, f"too many form fields (more than {max_parts})")
        parts.append({"headers": {}, "data": bytearray()})

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        field[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][field[0].lower()] = field[1]
        field[0], field[1] = b"", b""

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_part_data": on_part_data,
                                        "on_header_field": on_header_field, "on_header_value": on_header_value,
                                        "on_header_end": on_header_end})
    try:
        parser.write(raw)
        parser.finalize()
    except APIError:
        raise
    except Exception as e:  # python-multipart raises its own error types on malformed bodies
        raise APIError(400, f"malformed multipart/form-data body ({e})") from None
    out = []
    for p in parts:
        disp, opts = parse_options_header(p["headers"].get(b"content-disposition", b""))
        name = opts.get(b"name")
        if disp != b"form-data" or name is None:
            raise APIError(400, "malformed multipart/form-data body (a part without a form-data name)")
        fn = opts.get(b"filename")
        ct = p["headers"].get(b"content-type")
        out.append(Part(name.decode("utf-8", "replace"), bytes(p["data"]),
                        fn.decode("utf-8", "replace") if fn is not None else None,
                        ct.decode("latin-1") if ct else None))
    return out

