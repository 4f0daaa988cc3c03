"""Count the bytes of tensor storage that torch operations allocate, live and at their peak.

:class:`TensorBytes` is a ``TorchDispatchMode``: every operator run inside it
reports its outputs, and each output whose storage is new (not one of the
inputs' storages, not already counted) adds that storage's bytes to ``live``
until the storage is freed. ``peak`` is the largest ``live`` seen. Unlike the
resident set size of the process, these counts do not depend on the allocator
(glibc keeping freed blocks), on other threads or on the machine's load: the
same operators on the same shapes give the same bytes, which is what a test
can hold an engine to. Not counted: the scratch buffers a kernel allocates
internally (SDPA's or a matmul's packing space), and tensors made without an
operator (``torch.from_numpy``).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _storages(tree: Any) -> list[torch.UntypedStorage]:
    leaves, _ = tree_flatten(tree)
    return [leaf.untyped_storage() for leaf in leaves if isinstance(leaf, torch.Tensor)]


class TensorBytes(TorchDispatchMode):
    """Live and peak bytes of the tensor storages allocated by the operators run inside the block.

    ``live``: bytes of counted storages still alive; ``peak``: the largest
    ``live`` since entry or the last :meth:`reset_peak`. Storages allocated
    inside and still alive after exit stay counted until they are freed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._counted: set[int] = set()

    def reset_peak(self) -> None:
        """Start a new peak from the bytes live now."""
        self.peak = self.live

    def _freed(self, key: int, nbytes: int) -> None:
        self._counted.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        out = func(*args, **(kwargs or {}))
        inputs = {s.data_ptr() for s in _storages((args, kwargs or {}))}
        for storage in _storages(out):
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in inputs or key in self._counted or storage.device.type == "meta":
                continue
            self._counted.add(key)
            self.live += nbytes
            weakref.finalize(storage, self._freed, key, nbytes)
        self.peak = max(self.peak, self.live)
        return out
