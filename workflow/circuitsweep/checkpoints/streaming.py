"""Reading a checkpoint's weights into the configured dtype and device, one tensor at a time.

At real size (2 to 14 GB a revision) a second full copy of the weights is what
breaks memory: transformers' own loader keeps the memory-mapped source pages
resident while it converts (a bf16 file loaded as fp16 peaks at about twice
the weights, fp32 as fp16 at three times). Here each tensor is read, converted
and placed on its device before the next is read, so the peak is the weights
in the configured dtype plus one tensor as stored:

- ``*.safetensors``: the header is parsed and each tensor's bytes are read
  (``readinto``, through the page cache, which is not resident in this
  process) straight into a tensor of the file's dtype; when that is the
  configured dtype on the CPU it is kept as is, else converted and dropped.
- ``pytorch_model*.bin``: ``torch.load(weights_only=True, mmap=True)``
  (refuses code, maps the file without reading it); each tensor is copied out
  and its mapped pages are released again (``madvise(MADV_DONTNEED)``).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch

from circuitsweep.checkpoints.safetensors_format import safetensors_header
from circuitsweep.errors import SnapshotError

#: safetensors dtype names -> torch dtypes (those a language model checkpoint holds)
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MADV_DONTNEED = 4
#: the most bytes of a tensor held in its stored dtype while it is converted
STAGING_BYTES = 64 << 20
_PAGE = mmap.PAGESIZE


def _target(tensor_dtype: torch.dtype, dtype: torch.dtype) -> torch.dtype:
    """Floating tensors take the configured dtype; integer and bool buffers keep theirs."""
    return dtype if tensor_dtype.is_floating_point else tensor_dtype


def _read_exactly(handle, view: memoryview, path: Path, name: str) -> None:
    read = 0
    while read < len(view):
        got = handle.readinto(view[read:])
        if not got:
            raise SnapshotError(f"{path} is truncated inside tensor {name}")
        read += got


Destination = Callable[[str], "torch.Tensor | None"]


def iter_safetensors(
    path: Path, dtype: torch.dtype, device: torch.device, destination: Destination | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of one safetensors file, each read alone and converted to ``dtype`` on ``device``.

    A tensor already in its target dtype on the CPU is read straight into its
    final memory; any other is allocated in its target dtype and filled
    through one staging buffer of at most :data:`STAGING_BYTES`, reused for
    every tensor (a stored-dtype copy per tensor would leave the freed ones
    resident in the allocator's heap, about a second copy again). A tensor for which
    ``destination(name)`` returns a tensor is copied into it (a slice of a
    fused parameter) and not yielded.
    """
    start, header = safetensors_header(path)
    staging = torch.empty(0, dtype=torch.uint8)
    with open(path, "rb", buffering=0) as handle:
        for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            stored = SAFETENSORS_DTYPES.get(entry["dtype"])
            if stored is None:
                raise SnapshotError(f"{path}: tensor {name} has dtype {entry['dtype']}, which circuitsweep cannot read")
            begin, end = entry["data_offsets"]
            shape = entry["shape"]
            target = _target(stored, dtype)
            nbytes = stored.itemsize * int(torch.Size(shape).numel())
            if nbytes != end - begin:
                raise SnapshotError(f"{path}: tensor {name} holds {end - begin} bytes, not {nbytes} as shaped")
            into = destination(name) if destination is not None else None
            if into is None and target == stored and device.type == "cpu":
                raw = torch.empty(nbytes, dtype=torch.uint8)  # read straight into its final memory
                if nbytes:
                    handle.seek(start + begin)
                    _read_exactly(handle, memoryview(raw.numpy()), path, name)
                yield name, raw.view(stored).view(shape)
                continue
            out = into if into is not None else torch.empty(shape, dtype=target, device=device)
            flat = out.view(-1) if out.is_contiguous() else None
            if flat is None:  # a strided slice of a fused parameter: read whole, then copy
                whole = torch.empty(nbytes, dtype=torch.uint8)
                handle.seek(start + begin)
                _read_exactly(handle, memoryview(whole.numpy()), path, name)
                out.copy_(whole.view(stored).view(shape))
            else:
                # through a staging buffer of at most STAGING_BYTES: a 400 MB fp32 embedding
                # read as fp16 does not need 400 MB more
                step = max(stored.itemsize, STAGING_BYTES // stored.itemsize * stored.itemsize)
                if staging.numel() < min(nbytes, step):
                    staging = torch.empty(min(nbytes, step), dtype=torch.uint8)
                handle.seek(start + begin)
                for offset in range(0, nbytes, step):
                    size = min(step, nbytes - offset)
                    _read_exactly(handle, memoryview(staging[:size].numpy()), path, name)
                    first = offset // stored.itemsize
                    flat[first : first + size // stored.itemsize].copy_(staging[:size].view(stored))
            if into is None:
                yield name, out


def _release(tensor: torch.Tensor) -> None:
    """Drop the resident pages behind a memory-mapped tensor's storage (they are re-read if used again)."""
    storage = tensor.untyped_storage()
    begin = -(-storage.data_ptr() // _PAGE) * _PAGE
    end = (storage.data_ptr() + storage.nbytes()) // _PAGE * _PAGE
    if end > begin:
        # without madvise (not Linux) the pages stay until the file is closed
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).madvise(ctypes.c_void_p(begin), ctypes.c_size_t(end - begin), _MADV_DONTNEED)


def iter_pickle(path: Path, dtype: torch.dtype, device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of a ``pytorch_model.bin``: weights only, memory-mapped, copied out one at a time."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) pickles cannot be mapped: read whole, still weights only
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise SnapshotError(f"{path} holds a {type(state).__name__}, not a state dict")
    for name in list(state):
        source = state.pop(name)
        if not isinstance(source, torch.Tensor):
            raise SnapshotError(f"{path}: entry {name} is a {type(source).__name__}, not a tensor")
        copy = torch.empty(source.shape, dtype=_target(source.dtype, dtype), device=device)
        copy.copy_(source)
        _release(source)
        yield name, copy


#: One expert's projection as MoE checkpoints publish it (OLMoE, Mixtral-style names).
EXPERT_KEY = re.compile(r"^(?P<prefix>.*\.experts)\.(?P<expert>\d+)\.(?P<proj>gate_proj|up_proj|down_proj)\.weight$")


def expert_fusion(
    names: dict[str, list[int]], expected: Mapping[str, tuple[int, ...]], dtype: torch.dtype, device: torch.device
) -> tuple[dict[str, torch.Tensor], Destination]:
    """Fused expert parameters to fill while reading, and the destination of each per-expert tensor.

    transformers (>= 5) holds a MoE layer's experts as ``experts.gate_up_proj``
    ``[E, 2I, H]`` (gate rows, then up rows) and ``experts.down_proj``
    ``[E, H, I]``, and converts the published per-expert tensors only after
    all of them are loaded: both copies at once, about twice the weights.
    Here each per-expert tensor goes straight into its slice. ``names``: the
    checkpoint's tensor names and shapes; ``expected``: the model's parameter
    shapes. Layers whose shapes do not match are left to transformers.
    """
    fused: dict[str, torch.Tensor] = {}
    slices: dict[str, tuple[str, int, slice]] = {}
    for name, shape in names.items():
        match = EXPERT_KEY.match(name)
        if match is None:
            continue
        prefix, expert, proj = match["prefix"], int(match["expert"]), match["proj"]
        target = f"{prefix}.gate_up_proj" if proj != "down_proj" else f"{prefix}.down_proj"
        want = expected.get(target)
        if want is None or len(want) != 3 or expert >= want[0]:
            continue
        if proj == "down_proj":
            rows = slice(0, want[1])
            fits = tuple(shape) == tuple(want[1:])
        else:
            half = want[1] // 2
            rows = slice(0, half) if proj == "gate_proj" else slice(half, 2 * half)
            fits = tuple(shape) == (half, want[2])
        if fits:
            slices[name] = (target, expert, rows)
    complete = {
        target
        for target in {t for t, _, _ in slices.values()}
        if sum(1 for t, _, _ in slices.values() if t == target)
        == expected[target][0] * (2 if target.endswith("gate_up_proj") else 1)
    }
    for name in [n for n, (t, _, _) in slices.items() if t not in complete]:
        del slices[name]
    for target in complete:
        fused[target] = torch.empty(expected[target], dtype=dtype, device=device)

    def destination(name: str) -> torch.Tensor | None:
        if name not in slices:
            return None
        target, expert, rows = slices[name]
        return fused[target][expert, rows]

    return fused, destination


def read_weights(
    files: Sequence[Path],
    dtype: torch.dtype,
    device: torch.device,
    expected: Mapping[str, tuple[int, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """Every tensor of a snapshot's weight files in ``dtype`` (floating ones) on ``device``, no second copy.

    ``expected``: the model's parameter names and shapes; with it, published
    per-expert MoE tensors are read straight into the model's fused expert
    parameters (:func:`expert_fusion`). A tensor name stored in two files is
    refused (:class:`SnapshotError`), never silently taken from the later one.
    """
    weights: dict[str, torch.Tensor] = {}
    destination = None
    safetensors = [Path(path) for path in files if Path(path).suffix == ".safetensors"]
    if expected and safetensors:
        names = {name: entry["shape"] for path in safetensors for name, entry in safetensors_header(path)[1].items()}
        fused, destination = expert_fusion(names, expected, dtype, device)
        weights.update(fused)
    stored_in: dict[str, Path] = {}
    for path in files:
        path = Path(path)
        if path.suffix == ".safetensors":
            tensors = iter_safetensors(path, dtype, device, destination)
        else:
            tensors = iter_pickle(path, dtype, device)
        for name, tensor in tensors:
            if name in stored_in:
                raise SnapshotError(
                    f"{path.parent}: tensor {name} is stored in both {stored_in[name].name} and {path.name}; "
                    "remove the stale weight file"
                )
            stored_in[name] = path
            weights[name] = tensor
    return weights
