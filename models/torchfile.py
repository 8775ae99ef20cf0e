"""Reads a PyTorch checkpoint's tensors into numpy without torch.

Two layouts exist: the legacy one (`torch.save` before 1.6: magic number, protocol, system
info and the object as consecutive pickles, then a pickled list of storage keys, then each
storage as an int64 element count followed by its raw little-endian bytes) and the zip one
(`data.pkl` plus `data/<key>` files). Resemblyzer's `pretrained.pt` is legacy; both are read.

The unpickler is restricted: it resolves only the handful of globals a state dict needs
(`OrderedDict`, `_rebuild_tensor_v2`, the storage type names) and refuses anything else, so a
checkpoint cannot run code while it is read. Tensors come back as numpy views of their storage
(offset, shape and strides applied), copied to contiguous arrays.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    pass


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(DTYPES[name])


class _Tensor:
    """A tensor before its storage bytes are known: storage key, offset, shape, strides."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad=False, hooks=None, metadata=None):
    return _Tensor(storage, offset, shape, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.storages: dict[str, _StorageType] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which a state dict does not need")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        kind, key = pid[1], str(pid[2])
        if not isinstance(kind, _StorageType):
            raise CheckpointError(f"storage {key} has no known type")
        self.storages[key] = kind
        return key


def _materialise(obj, buffers: dict[str, np.ndarray]):
    if isinstance(obj, _Tensor):
        flat = buffers[obj.storage]
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[obj.offset:], shape=obj.shape, strides=[s * item for s in obj.stride])
        return np.ascontiguousarray(view)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, buffers)) for k, v in obj.items())
    return obj


def _load_legacy(data: bytes):
    f = io.BytesIO(data)
    if pickle.load(f) != LEGACY_MAGIC:  # plain ints: the default unpickler is safe here
        raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
    pickle.load(f)  # protocol version
    info = pickle.load(f)
    if not info.get("little_endian", True):
        raise CheckpointError("big-endian checkpoint")
    u = _Unpickler(f)
    obj = u.load()
    keys = pickle.load(f)  # list of storage keys (strings)
    buffers = {}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = u.storages[key].dtype
        raw = f.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise CheckpointError(f"storage {key} is truncated")
        buffers[key] = np.frombuffer(raw, dtype)
    return _materialise(obj, buffers)


def _load_zip(path) -> object:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError("zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        u = _Unpickler(io.BytesIO(z.read(pkl)))
        obj = u.load()
        buffers = {k: np.frombuffer(z.read(f"{prefix}data/{k}"), t.dtype) for k, t in u.storages.items()}
    return _materialise(obj, buffers)


def load(path) -> object:
    """The checkpoint's object with every tensor as a numpy array."""
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        return _load_legacy(f.read())
