"""Lossless compression of an episode's frames as one LZMA stream.

Successive Atari frames share most of their pixels, and a game shows the same screens again and again
(Pong between points). Deflate (``np.savez_compressed``) looks back 32 KB, about four 84x84 frames;
LZMA's 64 MB dictionary holds a whole episode, so a frame costs a few bytes where it repeats any earlier
one. Measured on a shipped Pong demo: 57 bytes per frame with deflate, 15 with this codec, decoded as fast.
"""

from __future__ import annotations

import lzma

import numpy as np

FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
"""LZMA2 at its strongest preset (64 MB dictionary): slow to encode (~4 s per 1,000 frames on one core),
fast to decode (~450 MB/s)."""


def encode_frames(frames: np.ndarray) -> np.ndarray:
    """``frames`` (uint8) as one LZMA stream, a 1-D uint8 array to store beside the shape."""
    return np.frombuffer(lzma.compress(np.ascontiguousarray(frames).tobytes(), format=lzma.FORMAT_XZ,
                                       check=lzma.CHECK_CRC64, filters=FILTERS), dtype=np.uint8)


def decode_frames(stream: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The frames `encode_frames` stored; raises ValueError if the stream is damaged or does not fill ``shape``
    (the stream's CRC64 catches damage)."""
    try:
        raw = lzma.decompress(stream.tobytes(), format=lzma.FORMAT_XZ)
    except lzma.LZMAError as error:
        raise ValueError(f"damaged frame stream ({error})") from None
    expected = int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"frame stream holds {len(raw)} bytes, its shape {tuple(shape)} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()
