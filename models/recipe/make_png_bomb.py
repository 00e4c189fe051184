#!/usr/bin/env python3
"""Writes the decompression-bomb fixture: a valid 16384x16384 greyscale PNG of zeros that
compresses to about 260 KB and would decode to 268 MB (RGB8: 805 MB).

Run from the repository root: python3 models/recipe/make_png_bomb.py
"""
import struct
import zlib
from pathlib import Path

SIDE = 16384
OUT = Path("vision/tests/fixtures/bomb-16384.png")


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def main():
    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    compressor = zlib.compressobj(9)
    row = bytes(SIDE + 1)  # filter byte 0, then the pixels
    idat = b"".join(compressor.compress(row) for _ in range(SIDE)) + compressor.flush()
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    OUT.write_bytes(png)
    print(f"{OUT}: {len(png)} bytes")


if __name__ == "__main__":
    main()
