"""Reading and writing media files, the bottom layer: codecs, data, eval and commands all use it.

    omnitok.io.image   PNG / JPEG / WebP bytes and files <-> uint8 arrays and float (C, H, W) tensors
    omnitok.io.audio   FLAC / WAV bytes and files <-> float32 (T,) mono, and a numpy windowed-sinc resampler
    omnitok.io.video   mp4 (H.264 via PyAV) bytes and files <-> uint8 (T, H, W, 3) and float tensors
    omnitok.io.text    UTF-8 text members of data shards
    omnitok.io.codes   code files (``*.codes.safetensors``): one media file's codes and where they came from

Imports numpy, torch, Pillow, soundfile and PyAV only (the last three when first used); never another omnitok layer.
"""
