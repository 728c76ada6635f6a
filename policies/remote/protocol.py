"""The wire format of a served policy: msgpack messages over a websocket, numpy arrays as dtype/shape/raw bytes.

Never pickle: a message decodes to dicts, lists, strings, numbers, bytes and numpy arrays of plain numeric dtypes
(bool, int, uint, float), nothing else. An array travels as the map ``{"__ndarray__": True, "dtype": "<f4",
"shape": [6], "data": <bytes>}``; object, structured, string and void dtypes are refused on both ends
(``ProtocolError``), and a ``data`` whose length is not ``prod(shape) * itemsize`` is refused too.

Messages (``VERSION``): the client opens with ``{"hello": {"version": 1, "token": "..."}}``; the server answers
``{"hello": {"version": 1, "metadata": {...}}}`` (the policy's kind, cameras, image size, chunk size) or ``{"error":
"..."}`` and closes. Then requests ``{"id": n, "reset": task}`` and ``{"id": n, "infer": observation}``, answered
``{"id": n, "ok": true, "server_s": ...}`` and ``{"id": n, "chunk": actions, "t_obs": ..., "server_s": ...}``
(``server_s``: the seconds the server spent in the policy), or ``{"id": n, "error": "..."}``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from policies.errors import PolicyError

VERSION = 1
MAX_MESSAGE_BYTES = 16 * 2**20  # 16 MiB: a few camera frames; websockets' max_size on both ends
ARRAY_KEY = "__ndarray__"
MAX_DIMS = 8
_DTYPE = re.compile(r"^[<>|=]?[biuf][1-8]$")  # bool, signed, unsigned, float: fixed size, no objects
_KINDS = frozenset("biuf")


class RemotePolicyError(PolicyError):
    """The served policy cannot be used: the server is unreachable, went away, refused the token, speaks another
    protocol version, did not answer in time, or answered with an error; the message says which and what to do."""


class ProtocolError(RemotePolicyError, ValueError):
    """A message that is not valid in this protocol (not msgpack, an array of a refused dtype, a bad shape)."""


def _msgpack():
    try:
        import msgpack
    except ImportError as exc:
        raise ImportError("a served policy needs msgpack: pip install 'onboard[remote]'") from exc
    return msgpack


def _check_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _KINDS or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ProtocolError(f"arrays of dtype {dtype} are refused (only bool, int, uint and float travel)")
    return dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        dtype = _check_dtype(arr.dtype)
        return {ARRAY_KEY: True, "dtype": dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype)
        return obj.item()
    raise ProtocolError(f"cannot send a {type(obj).__name__} (numbers, strings, bytes, lists, dicts and arrays only)")


def _decode(obj: dict) -> Any:
    if obj.get(ARRAY_KEY) is not True:
        return obj
    dtype_s, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
    if not isinstance(dtype_s, str) or not _DTYPE.match(dtype_s):
        raise ProtocolError(f"array dtype {dtype_s!r} is refused (only bool, int, uint and float travel)")
    dtype = _check_dtype(np.dtype(dtype_s))
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ProtocolError(f"array shape {shape!r} is not a list of at most {MAX_DIMS} sizes >= 0")
    if not isinstance(data, bytes):
        raise ProtocolError("array data must be bytes")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != len(data):
        raise ProtocolError(
            f"array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension types are refused (got type {code})")


def pack(message: Any) -> bytes:
    """``message`` as msgpack bytes (arrays as dtype/shape/bytes; anything else not plain data: ``ProtocolError``)."""
    return _msgpack().packb(message, default=_encode, use_bin_type=True)


def unpack(raw: bytes | str) -> Any:
    """The message in ``raw``; ``ProtocolError`` for anything that is not one (text frames, bad msgpack, refused
    arrays). Never executes or imports anything from the data."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ProtocolError("messages are binary msgpack frames, got a text frame")
    msgpack = _msgpack()
    try:
        return msgpack.unpackb(bytes(raw), object_hook=_decode, ext_hook=_refuse_ext, raw=False, strict_map_key=True)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(f"not a msgpack message: {type(exc).__name__}: {exc}") from None


def observation_metadata(loaded: Any) -> dict[str, Any]:
    """What the server tells a client in the handshake about a ``robot.policy_loader.LoadedPolicy``-like object."""
    policy = loaded.policy
    config = getattr(policy, "config", None)
    chunk = getattr(policy, "chunk_size", None) or getattr(config, "chunk_size", None)
    return {
        "kind": str(loaded.kind),
        "cameras": list(loaded.cameras) if loaded.cameras else None,
        "image_size": list(loaded.image_size) if loaded.image_size else None,
        "exact_size": bool(loaded.exact_size),
        "chunk_size": int(chunk) if isinstance(chunk, int | np.integer) else None,
        "path": loaded.path,
    }
