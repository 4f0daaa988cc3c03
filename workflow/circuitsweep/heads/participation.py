"""The spectral phase's measurement (docs/methods.md): each head's participation ratio at the query.

A forward pre-hook on each layer's attention output projection (the module the
ablation hooks, :func:`heads.ablation.output_projections`) keeps each head's
slice of that projection's input at the query position, for the first
``n`` sequences of the induction probe, during the probe's own forward passes.
The participation ratio of the ``[n, head_dim]`` matrix of one head is then
``exp(entropy)`` of its normalised squared singular values, in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from circuitsweep.errors import DataError
from circuitsweep.heads.attention_hook import StopForward

#: Floor of the sum of squared singular values and offset inside the logarithm (the study's).
PR_EPSILON = 1e-12


def participation_ratio(x: torch.Tensor) -> torch.Tensor:
    """Participation ratio of each matrix in ``x`` ``[..., n, d]``: ``[...]``, float32.

    s = singular values; p = s^2 / max(sum s^2, 1e-12); PR = exp(-sum p log(p + 1e-12)).
    It lies between 1 (one direction) and min(n, d) (all directions equal). Non-finite values (a checkpoint
    with NaN or infinite weights) are a :class:`DataError` naming the first bad matrix, before the SVD,
    which would fail with a linear-algebra error.
    """
    x = x.float()
    finite = torch.isfinite(x).flatten(-2).all(-1)  # [...]
    if not bool(finite.all()):
        where = [int(i) for i in torch.nonzero(~finite)[0].tolist()]
        raise DataError(
            f"the spectral capture holds non-finite values (NaN or inf) at index {where} of {list(finite.shape)} "
            "(layer, head): the checkpoint's weights or activations are not finite; refusing to measure it"
        )
    s = torch.linalg.svdvals(x)
    s2 = s * s
    p = s2 / s2.sum(-1, keepdim=True).clamp(min=PR_EPSILON)
    return torch.exp(-(p * torch.log(p + PR_EPSILON)).sum(-1))


def projections(model: nn.Module) -> dict[int, nn.Module]:
    """Each layer's attention output projection: the decoders' (:func:`heads.ablation.output_projections`),
    else an encoder's whose projection sits beside its attention (BERT: ``attention.output.dense``)."""
    from circuitsweep.heads.ablation import output_projections

    try:
        return output_projections(model)
    except DataError:
        found: dict[int, nn.Module] = {}
        for module in model.modules():
            children = dict(module.named_children())
            layer = getattr(children.get("self"), "layer_idx", None)
            dense = getattr(children.get("output"), "dense", None)
            if isinstance(layer, int) and isinstance(dense, nn.Module):
                found[layer] = dense
        if sorted(found) != list(range(model.config.num_hidden_layers)):
            raise
        return found


class SpectralCapture:
    """Keeps each head's output-projection input at one query position for the first ``n`` sequences.

    ``projections``: each layer's output projection, by layer index; ``query``:
    the position (the induction probe's last, T - 1). The captured rows are
    copied into one float32 tensor on the CPU, ``[L, n, H * head_dim]``
    (:attr:`rows`), allocated at the first capture: the capture keeps
    ``4 n L H head_dim`` bytes and nothing of any batch's activations.
    """

    def __init__(self, projections: dict[int, nn.Module], n_heads: int, query: int, n: int) -> None:
        self.projections = projections
        self.n_heads = n_heads
        self.query = query
        self.n = n
        self.layers = sorted(projections)
        self.last_layer = self.layers[-1]
        #: the captured rows, ``[L, n, H * head_dim]`` float32 on the CPU, allocated at the first capture
        self.rows: torch.Tensor | None = None
        self.counts = dict.fromkeys(self.layers, 0)

    @classmethod
    def of(cls, model: nn.Module, query: int, n: int) -> SpectralCapture:
        """The capture for a loaded model; :class:`DataError` when its output projections cannot be found."""
        return cls(projections(model), model.config.get_text_config().num_attention_heads, query, n)

    def wanted(self, part: slice) -> int:
        """How many sequences of batch ``part`` (a slice of the probe) are captured: its rows before ``n``."""
        return max(0, min(part.stop, self.n) - part.start)

    def _hook(self, layer: int, start: int, keep: int, stop: bool):  # noqa: ANN202 - a torch hook
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            width = x.shape[-1]
            if width % self.n_heads:
                raise DataError(f"output projection input width {width} is not a multiple of {self.n_heads} heads")
            if self.rows is None:
                self.rows = torch.empty(len(self.layers), self.n, width, dtype=torch.float32)
            elif self.rows.shape[-1] != width:
                raise DataError(f"output projection input width {width} in layer {layer}, {self.rows.shape[-1]} before")
            # copied into the preallocated rows: a view of x would keep the whole [B, T, width] batch alive
            self.rows[self.layers.index(layer), start : start + keep].copy_(x[:keep, self.query])
            self.counts[layer] += keep
            if stop:
                raise StopForward(layer)

        return hook

    @contextlib.contextmanager
    def capturing(self, part: slice, stop_at_last: bool) -> Iterator[int]:
        """Hook every projection for one batch; yields the number of sequences kept (0: no hook placed).

        With ``stop_at_last`` the last layer's hook raises :class:`StopForward`
        once it has captured (nothing after it is needed).
        """
        keep = self.wanted(part)
        handles = []
        if keep:
            for layer, module in self.projections.items():
                stop = stop_at_last and layer == self.last_layer
                handles.append(module.register_forward_pre_hook(self._hook(layer, part.start, keep, stop)))
        try:
            yield keep
        finally:
            for handle in handles:
                handle.remove()

    def result(self) -> torch.Tensor:
        """Participation ratio of every head, ``[L, H]`` float32, over the captured sequences."""
        counts = set(self.counts.values())
        if counts != {self.n} or self.rows is None:
            raise DataError(
                f"the spectral capture kept {sorted(counts)} sequences per layer, expected {self.n}: "
                "some layer's output projection did not run"
            )
        rows = self.rows.view(len(self.layers), self.n, self.n_heads, -1)  # [L, n, H, D]
        return participation_ratio(rows.permute(0, 2, 1, 3))  # [L, H]
