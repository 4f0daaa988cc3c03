"""The header of a ``.safetensors`` file, read and checked without torch.

Planning checks every checkpoint's weight files with it before any job
(:func:`circuitsweep.checkpoints.run_dir.check_weights`), and the streaming
loader reads the tensors' places from it (:mod:`circuitsweep.checkpoints.streaming`).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from circuitsweep.errors import SnapshotError

#: The largest header the safetensors format allows (its own reader's limit), bytes.
MAX_HEADER_BYTES = 100_000_000


def _entry_problem(entry: object) -> str | None:
    """What makes one tensor entry of a safetensors header unreadable (``dtype``, ``shape``, ``data_offsets``)."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an object"
    for key in ("dtype", "shape", "data_offsets"):
        if key not in entry:
            return f"has no {key!r}"
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(entry["dtype"], str):
        return "has a dtype that is not a string"
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return f"has shape {shape!r}, not a list of non-negative integers"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(n) is int for n in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        return f"has data_offsets {offsets!r}, not [begin, end] with 0 <= begin <= end"
    return None


def safetensors_header(path: Path) -> tuple[int, dict]:
    """The byte offset where tensor data starts and the parsed JSON header of a ``.safetensors`` file.

    Refuses, naming the file, a length field beyond the file (a text file, a
    truncated download), a header that is not UTF-8 JSON object, and a
    tensor entry without a readable ``dtype``, ``shape`` or ``data_offsets``.
    """
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise SnapshotError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        size = Path(path).stat().st_size
        if length > min(size - 8, MAX_HEADER_BYTES):
            raise SnapshotError(
                f"{path} is not a safetensors file: its header length field says {length} bytes, the file holds {size}"
            )
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise SnapshotError(f"{path}: unreadable safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise SnapshotError(f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object")
    header.pop("__metadata__", None)
    for name, entry in header.items():
        problem = _entry_problem(entry)
        if problem is not None:
            raise SnapshotError(f"{path}: tensor {name} of the safetensors header {problem}")
    return 8 + length, header
