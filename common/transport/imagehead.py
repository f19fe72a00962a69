"""An encoded picture's own declared size, read from its header bytes (JPEG SOF marker, PNG IHDR), before it is
decoded: a 629-byte JPEG may claim 60000×60000 pixels, and a decoder believes it (gigabytes, seconds, or an
exception).  Every decode of bytes from a peer (the wire, the browser camera) asks here first and refuses a
picture over the limits without decoding it.
"""

from __future__ import annotations

import struct
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic): they carry the size
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type → channels (3: a palette, decoded as colour)
MAX_SCAN_BYTES = 1 << 20  # markers before the frame header: beyond this, not a picture we take


def jpeg_size(data: Any) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG's frame header; None when the bytes are not a JPEG with one."""
    b = memoryview(data).cast("B") if not isinstance(data, bytes | bytearray) else memoryview(data)
    n = min(len(b), MAX_SCAN_BYTES)
    if n < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if b[i] != 0xFF:
            return None  # a marker must start here
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or the scan began before any frame header
            return None
        (length,) = struct.unpack_from(">H", b, i + 2)
        if length < 2:
            return None
        if marker in _SOF:
            if i + 10 > n or length < 8:
                return None
            height, width = struct.unpack_from(">HH", b, i + 5)
            return width, height, b[i + 9]
        i += 2 + length
    return None


def png_size(data: Any) -> tuple[int, int, int] | None:
    """(width, height, channels) from a PNG's IHDR chunk; None when the bytes are not a PNG with one."""
    b = bytes(memoryview(data)[:26])
    if len(b) < 26 or b[:8] != PNG_SIGNATURE or b[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", b, 16)
    channels = _PNG_CHANNELS.get(b[25])
    return None if channels is None else (width, height, channels)


def declared_size(data: Any) -> tuple[int, int, int] | None:
    """(width, height, channels) a JPEG or PNG says it has; None for anything else (or a broken header)."""
    return jpeg_size(data) or png_size(data)


def over_limit(size: tuple[int, int, int] | None, max_pixels: int, min_side: int = 1) -> str | None:
    """Why a declared size is refused (no header, a zero or tiny side, over ``max_pixels``); None: it may be
    decoded."""
    if size is None:
        return "no JPEG or PNG header with its size"
    w, h, _ = size
    if min(w, h) < min_side:
        return f"{w}x{h} is smaller than {min_side} pixels a side"
    if w * h > max_pixels:
        return f"{w}x{h} is over the {max_pixels} pixel cap"
    return None
