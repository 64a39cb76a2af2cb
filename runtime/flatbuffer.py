"""A bounds-checked reader of FlatBuffers tables, by field number, for files that may be damaged.

The generated FlatBuffers code (and ``flatbuffers.table.Table``) trusts every offset: a damaged length makes it read
past the end (``unpack_from requires a buffer of at least 1761608330 bytes``) or, through Python's negative offsets,
silently from the end of the file. Here every position is checked against the buffer before it is read, and any
violation raises :class:`FlatbufferError`, which callers turn into one line naming the file.
"""

from __future__ import annotations

import struct


class FlatbufferError(ValueError):
    """The bytes are not a well-formed flatbuffer (an offset or length points outside the buffer)."""


_FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def _check(buf, pos: int, size: int) -> int:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise FlatbufferError(f"offset {pos}+{size} outside a buffer of {len(buf)} bytes")
    return pos


def read_uint(buf, pos: int, size: int) -> int:
    _check(buf, pos, size)
    return struct.unpack_from(_FORMATS[size], buf, pos)[0]


def read_int(buf, pos: int, size: int) -> int:
    _check(buf, pos, size)
    return struct.unpack_from(_FORMATS[size].lower(), buf, pos)[0]


def root(buf) -> "Table":
    """The root table of a finished flatbuffer (its uoffset is the first 4 bytes)."""
    return Table(buf, read_uint(buf, 0, 4))


class Table:
    """One table: its vtable and object are checked to lie inside the buffer when it is opened."""

    __slots__ = ("buf", "pos", "vtable", "vtable_size", "object_size")

    def __init__(self, buf, pos: int):
        self.buf, self.pos = buf, _check(buf, pos, 4)
        self.vtable = pos - read_int(buf, pos, 4)
        self.vtable_size = read_uint(buf, self.vtable, 2)
        self.object_size = read_uint(buf, self.vtable + 2, 2)
        if self.vtable_size < 4 or self.vtable_size % 2 or self.object_size < 4:
            raise FlatbufferError(f"table at {pos}: bad vtable")
        _check(buf, self.vtable, self.vtable_size)
        _check(buf, pos, self.object_size)

    def offset(self, field: int) -> int:
        """Byte offset of ``field`` inside the object (0: absent)."""
        slot = 4 + 2 * field
        if slot >= self.vtable_size:
            return 0
        off = read_uint(self.buf, self.vtable + slot, 2)
        if off and off >= self.object_size:
            raise FlatbufferError(f"table at {self.pos}: field {field} outside its object")
        return off

    def has(self, field: int) -> bool:
        return self.offset(field) != 0

    def uint(self, field: int, size: int = 4, default: int = 0) -> int:
        off = self.offset(field)
        return read_uint(self.buf, self.pos + off, size) if off else default

    def signed(self, field: int, size: int = 4, default: int = 0) -> int:
        off = self.offset(field)
        return read_int(self.buf, self.pos + off, size) if off else default

    def float32(self, field: int, default: float = 0.0) -> float:
        off = self.offset(field)
        return struct.unpack_from("<f", self.buf, _check(self.buf, self.pos + off, 4))[0] if off else default

    def _indirect(self, field: int) -> int:
        off = self.offset(field)
        at = self.pos + off
        return at + read_uint(self.buf, at, 4) if off else -1

    def table(self, field: int) -> "Table | None":
        at = self._indirect(field)
        return Table(self.buf, at) if at >= 0 else None

    def vector(self, field: int, item_size: int) -> tuple[int, int]:
        """(start, length) of a vector field whose items are ``item_size`` bytes, checked in bounds; (0, 0) absent."""
        at = self._indirect(field)
        if at < 0:
            return 0, 0
        n = read_uint(self.buf, at, 4)
        _check(self.buf, at + 4, n * item_size)
        return at + 4, n

    def bytes(self, field: int) -> bytes | None:
        start, n = self.vector(field, 1)
        return bytes(self.buf[start:start + n]) if self.has(field) else None

    def string(self, field: int) -> str:
        raw = self.bytes(field)
        return raw.decode("utf-8", "replace") if raw else ""

    def numbers(self, field: int, fmt: str) -> tuple:
        """A vector of scalars, e.g. ``"i"`` (int32), ``"f"`` (float32), ``"q"`` (int64)."""
        start, n = self.vector(field, struct.calcsize(fmt))
        return struct.unpack_from(f"<{n}{fmt}", self.buf, start) if n else ()

    def tables(self, field: int) -> list["Table"]:
        start, n = self.vector(field, 4)
        return [Table(self.buf, start + 4 * k + read_uint(self.buf, start + 4 * k, 4)) for k in range(n)]

    def union(self, type_field: int) -> tuple[int, "Table | None"]:
        kind = self.uint(type_field, 1)
        return kind, (self.table(type_field + 1) if kind else None)
