"""Bounds-checked reading of a FlatBuffer, the container format of .tflite files.

Usage:
    fb = FlatBuf(data, label="model.tflite")          # budget: STRUCTURE_FACTOR x len(data)
    root = fb.root()                      # position of the root table
    version = fb.scalar(root, 0, "<I", 0) # field slot 0, default 0
    for t in fb.tables(root, 2): ...      # vector of tables in slot 2

The generated FlatBuffers code trusts its input: a corrupt length makes it
read past the end or loop for a very long time. Here every read checks that
the bytes it needs lie inside the buffer, and every vector's length is checked
against the bytes left. That alone does not bound the work: FlatBuffers let
many fields point at one vector (60,000 tensors sharing one 60,000-entry shape
is a legal 480 KB file that would cost 3.6e9 elements). So every element we
materialise (a vector's entries, a string's bytes, a table in a vector) is
charged to a Budget of STRUCTURE_FACTOR elements per byte of the file; a file
that asks for more is refused in one line. A well-formed file stores each
element once, in at least one byte, so it never comes near the budget. Any
inconsistency raises UserError with one line naming the file and the offset.

FlatBuffers in brief (all little-endian): the file starts with a uint32
offset to the root table. A table starts with an int32 soffset; the table
position minus it is the table's vtable: uint16 vtable size, uint16 table
size, then one uint16 per field slot giving the field's offset inside the
table (0: absent, use the default). Strings, vectors and sub-tables are stored
as a uint32 offset relative to the field's own position; a vector is a uint32
element count followed by the elements.
"""
from __future__ import annotations

import struct

import numpy as np

from ..errors import UserError, printable  # noqa: F401  (re-exported)


STRUCTURE_FACTOR = 2          # elements materialised per byte of the file
BUDGET_BASE = 1 << 16         # so that tiny test files are never starved


class Budget:
    """A count of elements that reading one file may still materialise."""

    def __init__(self, limit: int, label: str, what: str):
        self.left = int(limit)
        self.limit = int(limit)
        self.label = label
        self.what = what

    def charge(self, n: int, why: str) -> None:
        self.left -= int(n)
        if self.left < 0:
            raise UserError(f"{self.label}: reading it needs more than {self.limit:,} {self.what} "
                            f"(a budget of its file size), refused at {why}; "
                            "its structure repeats shared data")


class FlatBuf:
    def __init__(self, data: bytes, label: str = "flatbuffer", budget: Budget | None = None):
        self.data = bytes(data)
        self.label = printable(label)
        self.budget = budget or Budget(STRUCTURE_FACTOR * len(self.data) + BUDGET_BASE,
                                       self.label, "elements")

    def fail(self, what: str, pos: int | None = None) -> UserError:
        where = f" at offset {pos}" if pos is not None else ""
        return UserError(f"corrupt {self.label}: {printable(what)}{where}")

    # -- primitives -------------------------------------------------------
    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.data):
            raise self.fail(f"{what} ({size} bytes) runs past the end ({len(self.data)} bytes)", pos)

    def unpack(self, fmt: str, pos: int, what: str = "value"):
        self.need(pos, struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def indirect(self, pos: int, what: str) -> int:
        """Follow the uint32 offset stored at pos (relative to pos)."""
        target = pos + self.unpack("<I", pos, what)
        if target >= len(self.data):
            raise self.fail(f"{what} points past the end", pos)
        return target

    # -- tables -----------------------------------------------------------
    def root(self) -> int:
        return self.indirect(0, "root table offset")

    def field(self, table: int, slot: int, size: int) -> int | None:
        """Absolute position of a field of `size` bytes, or None if absent."""
        vtable = table - self.unpack("<i", table, "table vtable offset")
        vt_size = self.unpack("<H", vtable, "vtable size")
        tbl_size = self.unpack("<H", vtable + 2, "table size")
        if vt_size < 4 or vt_size % 2:
            raise self.fail(f"vtable size {vt_size} is invalid", vtable)
        self.need(vtable, vt_size, "vtable")
        self.need(table, tbl_size, "table")
        entry = 4 + 2 * slot
        if entry + 2 > vt_size:
            return None
        off = self.unpack("<H", vtable + entry, "vtable entry")
        if off == 0:
            return None
        if off + size > tbl_size:
            raise self.fail(f"field {slot} lies outside its table", table)
        return table + off

    def scalar(self, table: int, slot: int, fmt: str, default):
        pos = self.field(table, slot, struct.calcsize(fmt))
        return default if pos is None else self.unpack(fmt, pos, f"field {slot}")

    def table(self, table: int, slot: int) -> int | None:
        pos = self.field(table, slot, 4)
        return None if pos is None else self.indirect(pos, f"field {slot}")

    # -- vectors ----------------------------------------------------------
    def vector(self, table: int, slot: int, elem_size: int) -> tuple[int, int]:
        """(start, count) of a vector field; (0, 0) if absent."""
        pos = self.field(table, slot, 4)
        if pos is None:
            return 0, 0
        vec = self.indirect(pos, f"vector field {slot}")
        count = self.unpack("<I", vec, "vector length")
        self.need(vec + 4, count * elem_size, f"vector of {count} elements")
        return vec + 4, count

    def array(self, table: int, slot: int, dtype: str) -> np.ndarray | None:
        """A vector of scalars as a numpy array (copy); None if absent."""
        dt = np.dtype(dtype)
        if self.field(table, slot, 4) is None:
            return None
        start, count = self.vector(table, slot, dt.itemsize)
        self.budget.charge(count, f"a vector of {count} elements in field {slot}")
        return np.frombuffer(self.data, dtype=dt, count=count, offset=start).copy()

    def tables(self, table: int, slot: int) -> list[int]:
        """Positions of the tables in a vector-of-tables field."""
        start, count = self.vector(table, slot, 4)
        self.budget.charge(count, f"a vector of {count} tables in field {slot}")
        return [self.indirect(start + 4 * i, f"element {i} of field {slot}") for i in range(count)]

    def string(self, table: int, slot: int) -> str | None:
        raw = self.array(table, slot, "u1")
        return None if raw is None else raw.tobytes().decode("utf-8", errors="replace")
