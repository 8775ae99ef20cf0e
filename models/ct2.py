"""Reader for CTranslate2 `model.bin` files (binary format version 6).

Layout (all little-endian), as written by CTranslate2's `ModelSpec.save`:

    u32  binary version (6)
    str  spec name (e.g. "WhisperSpec")          str = u16 byte length incl. NUL, bytes, NUL
    u32  spec revision
    u32  number of variables
    per variable:
        str  name                                 e.g. "encoder/layer_0/ffn/linear_0/weight"
        u8   rank
        u32  dims[rank]
        u8   dtype                                see DTYPES
        u32  byte size
        raw  data (row-major)
    u32  number of aliases
    per alias: str alias name, str target variable name

Float16/bfloat16 tensors are widened to float32 on request (`as_f32`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

SUPPORTED_VERSION = 6

# CTranslate2 DataType enum order.
DTYPES = {
    0: np.dtype("<f4"),  # float32
    1: np.dtype("i1"),  # int8
    2: np.dtype("<i2"),  # int16
    3: np.dtype("<i4"),  # int32
    4: np.dtype("<f2"),  # float16
    5: "bfloat16",  # widened by hand below
}


class FormatError(ValueError):
    """The file is not a CTranslate2 model.bin this reader understands."""


@dataclass
class Ct2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def raw(self, name: str) -> np.ndarray:
        seen = set()
        while name in self.aliases and name not in self.variables:
            if name in seen:
                raise FormatError(f"alias cycle at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        try:
            return self.variables[name]
        except KeyError:
            raise KeyError(f"model.bin has no variable {name!r}") from None

    def f32(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.raw(name), dtype=np.float32)


class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise FormatError(
                f"truncated model.bin: wanted {n} bytes at offset {self.pos}, file has {len(self.buf)}"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        n = self.u16()
        raw = bytes(self.take(n))
        if not raw.endswith(b"\0"):
            raise FormatError(f"string at offset {self.pos - n} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read(path_or_bytes) -> Ct2Model:
    """Parse a model.bin (path or bytes). Arrays are copies, independent of the input buffer."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = memoryview(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = memoryview(f.read())
    cur = _Cursor(data)
    version = cur.u32()
    if version != SUPPORTED_VERSION:
        raise FormatError(f"model.bin binary version {version}, this reader knows {SUPPORTED_VERSION}")
    spec = cur.string()
    revision = cur.u32()
    n_vars = cur.u32()
    variables: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = cur.string()
        rank = cur.u8()
        shape = tuple(cur.u32() for _ in range(rank))
        code = cur.u8()
        nbytes = cur.u32()
        if code not in DTYPES:
            raise FormatError(f"{name}: unknown dtype code {code}")
        dt = DTYPES[code]
        blob = cur.take(nbytes)
        count = int(np.prod(shape, dtype=np.int64)) if rank else 1
        if dt == "bfloat16":
            if nbytes != 2 * count:
                raise FormatError(f"{name}: {nbytes} bytes for {shape} bfloat16")
            arr = _bf16_to_f32(np.frombuffer(blob, dtype="<u2")).reshape(shape)
        else:
            if nbytes != dt.itemsize * count:
                raise FormatError(f"{name}: {nbytes} bytes for shape {shape} of {dt}")
            arr = np.frombuffer(blob, dtype=dt).reshape(shape).copy()
        variables[name] = arr
    aliases: dict[str, str] = {}
    if cur.pos < len(data):
        for _ in range(cur.u32()):
            alias = cur.string()
            aliases[alias] = cur.string()
    if cur.pos != len(data):
        raise FormatError(f"{len(data) - cur.pos} trailing bytes after the alias table")
    return Ct2Model(spec, revision, variables, aliases)
