"""Read the files out of a Qt binary resource bundle (``.rcc``), as GCompris ships its activities' pictures.

Used only by the maintainer tool :mod:`study.mini_benchmark.make_v4_photos`.  The format (Qt's
``rcc``, versions 1-3): the magic ``qres``, then big-endian u32 version and the offsets of the tree, the data
block and the names block (version 3 adds a u32 of flags).  Tree nodes are 14 bytes (version 1) or 22 (version 2
on: 8 more bytes of modification time): the name's offset (u32) and flags (u16: 2 = directory, 1 = zlib,
4 = zstd); then a directory's child count and first child index (u32, u32), or a file's country and
language (u16, u16) and its data offset (u32).  A name is a u16 length, a u32 hash and UTF-16BE text; a data
entry is a u32 size and the bytes (zlib entries start with a u32 uncompressed size).  Node 0 is the root.
"""
from __future__ import annotations

import struct
import zlib

from oe_core.errors import DataError

_DIR, _ZLIB, _ZSTD = 2, 1, 4


def read_rcc(data: bytes, where: str = "the .rcc file") -> dict[str, bytes]:
    """Every file in the bundle: ``{"dir/sub/name.ext": bytes}`` (zlib entries decompressed)."""
    if data[:4] != b"qres" or len(data) < 20:
        raise DataError(f"{where} is not a Qt resource bundle (no 'qres' header)")
    version, tree, blobs, names = struct.unpack(">IIII", data[4:20])
    if version not in (1, 2, 3):
        raise DataError(f"{where}: unsupported Qt resource format version {version}")
    node_size = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def need(end: int) -> None:
        if end > len(data):
            raise DataError(f"{where} is corrupt (an entry ends at byte {end}, past the end, {len(data)})")

    def name_at(offset: int) -> str:
        need(names + offset + 6)
        (length,) = struct.unpack(">H", data[names + offset:names + offset + 2])
        start = names + offset + 6          # past the length and the u32 hash
        need(start + 2 * length)
        return data[start:start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise DataError(f"{where}: the resource tree is deeper than 64 levels (corrupt)")
        at = tree + index * node_size
        need(at + node_size)
        name_offset, flags = struct.unpack(">IH", data[at:at + 6])
        path = f"{prefix}{name_at(name_offset)}" if index else ""
        if flags & _DIR:
            count, first = struct.unpack(">II", data[at + 6:at + 14])
            for child in range(first, first + count):
                walk(child, f"{path}/" if path else "", depth + 1)
            return
        (offset,) = struct.unpack(">I", data[at + 10:at + 14])
        need(blobs + offset + 4)
        (size,) = struct.unpack(">I", data[blobs + offset:blobs + offset + 4])
        need(blobs + offset + 4 + size)
        blob = data[blobs + offset + 4:blobs + offset + 4 + size]
        if flags & _ZSTD:
            raise DataError(f"{where}: {path!r} is zstd-compressed, which this reader does not handle")
        out[path] = zlib.decompress(blob[4:]) if flags & _ZLIB else blob

    try:
        walk(0, "", 0)
    except (struct.error, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{where} is corrupt ({type(e).__name__}: {e})") from e
    return out
