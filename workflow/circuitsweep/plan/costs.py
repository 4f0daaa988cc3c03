"""What a sweep costs before it runs: downloads, peak disk and measurement hours; no torch.

Every dry run and ``circuitsweep check-config`` print these lines, with one
more per model whose revision manifest lists only part of the repository's
branches. Sizes are estimates from each model's shape (``models.<name>.shape``,
the toy's own, else :data:`sizing.DEFAULT_MODEL_CONFIG`) and the dtype its
weights are published in (``shape.torch_dtype``, else the configured dtype):

    snapshot bytes = parameters x bytes per published parameter
    download       = sum over the Hub revisions still to measure
    peak disk      = the ``snapshots_on_disk`` largest of them (the disk bound)
    hours          = sum of :func:`resources.measure_seconds` with a typical start-up

Other sources (toy, local, run_dir, package) download nothing and their
snapshots point at files already on disk.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitsweep.plan import resources, sizing

GB = 1e9
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class SweepCost:
    """The cost of measuring ``revisions`` revisions: bytes, and hours on ``device`` (``GPU`` or ``CPU``)."""

    revisions: int
    download_bytes: int
    peak_disk_bytes: int
    hours: float
    device: str
    snapshots_on_disk: int
    #: models sized by the default shape (no ``shape`` in their config entry)
    unsized: tuple[str, ...] = ()
    #: on a machine without a GPU where the config says ``device: auto``: the same sweep's GPU-hours
    gpu_hours: float | None = None


def snapshot_bytes(model_config: Mapping[str, Any], dtype: str) -> int:
    """Bytes of one revision's weights as published: parameters x bytes of ``shape.torch_dtype`` (else ``dtype``)."""
    shape = resources.planning_model_config(dict(model_config))
    return sizing.model_params(shape) * DTYPE_BYTES.get(shape.get("torch_dtype") or dtype, 4)


def sweep_cost(
    models: Mapping[str, Mapping[str, Any]],
    dtypes: Mapping[str, str],
    probes: Mapping[str, Mapping[str, Any]],
    pending: Mapping[str, Sequence[str]],
    snapshots_on_disk: int,
    device: str,
    gpu_present: bool,
) -> SweepCost:
    """The cost of measuring the ``pending`` revisions of each model.

    ``models``: the config's model entries; ``dtypes``/``probes``: each model's
    resolved dtype and probe settings; ``device``: the config's device
    (``auto`` measures on a GPU only where ``gpu_present``).
    """
    on_gpu = device == "cuda" or (device == "auto" and gpu_present)
    sizes: list[int] = []
    download = 0
    seconds = {"cpu": 0.0, "cuda": 0.0}
    for name, revisions in pending.items():
        entry = models[name]
        if entry["source"]["type"] == "hub":
            size = snapshot_bytes(entry, dtypes[name])
            sizes += [size] * len(revisions)
            download += size * len(revisions)
        shape = resources.planning_model_config(dict(entry))
        for kind in seconds:
            job = resources.measure_seconds(shape, dict(probes[name]), kind, resources.TYPICAL_START_UP_S)
            seconds[kind] += len(revisions) * job
    unsized = tuple(
        name for name in pending if not models[name].get("shape") and models[name]["source"]["type"] != "toy"
    )
    return SweepCost(
        revisions=sum(len(r) for r in pending.values()),
        download_bytes=download,
        peak_disk_bytes=sum(heapq.nlargest(snapshots_on_disk, sizes)),
        hours=seconds["cuda" if on_gpu else "cpu"] / 3600,
        device="GPU" if on_gpu else "CPU",
        snapshots_on_disk=snapshots_on_disk,
        unsized=unsized,
        gpu_hours=seconds["cuda"] / 3600 if device == "auto" and not on_gpu else None,
    )


def _gb(n_bytes: float) -> str:
    if not n_bytes:
        return "0 GB"
    return f"{n_bytes / GB:,.1f} GB" if n_bytes >= 0.05 * GB else f"{n_bytes / GB:.3f} GB"


def _hours(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 0.1 else f"{hours:.2f}"


def describe_cost(cost: SweepCost) -> str:
    """One line: revisions to measure, download, peak disk and estimated hours."""
    if not cost.revisions:
        return "circuitsweep: every planned revision is measured already: nothing to download"
    revisions = f"{cost.revisions} revision{'s' if cost.revisions > 1 else ''}"
    line = (
        f"circuitsweep: {revisions} to measure: download {_gb(cost.download_bytes)},"
        f" peak disk {_gb(cost.peak_disk_bytes)} (at most {cost.snapshots_on_disk} snapshots at once),"
        f" about {_hours(cost.hours)} {cost.device}-hours"
    )
    if cost.gpu_hours is not None:
        line += f" here (no GPU; on one: about {_hours(cost.gpu_hours)} GPU-hours)"
    if cost.unsized:
        line += f"; sized as OLMoE 1B-7B (no models.<name>.shape): {', '.join(cost.unsized)}"
    return line


@dataclass(frozen=True)
class PartialManifest:
    """A model whose manifest lists ``listed`` of about ``published`` branches (None: unknown)."""

    model: str
    repo_id: str
    path: Path
    listed: int
    published: int | None


def describe_partial(manifest: PartialManifest) -> str:
    """One line: how many branches the manifest lacks, and the command that lists them all."""
    lacks = (
        f"lacks about {manifest.published - manifest.listed:,} of about {manifest.published:,} branches"
        if manifest.published
        else "lacks branches the repository has"
    )
    return (
        f"circuitsweep: {manifest.model}: the manifest {manifest.path} lists {manifest.listed} branches and {lacks};"
        f" to sweep them all, first run: circuitsweep refresh-manifest {manifest.repo_id} {manifest.path}"
    )
