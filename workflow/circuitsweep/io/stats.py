"""Safetensors shards of reduced statistics (head and primitive caches), with metadata.

A shard carries the run's metadata (model, revision, step, tokens, probes,
first-token policy, dtype, versions) as JSON under :data:`contracts.META_KEY`
in its header, like the Parquet tables of :mod:`circuitsweep.io.tables`, and is
written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from circuitsweep.errors import CacheError
from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_path

if TYPE_CHECKING:
    import numpy as np
    import torch


def software_versions() -> dict[str, str]:
    """Versions of the software that made a cache file, stored in its metadata."""
    import platform

    import torch
    import transformers

    from circuitsweep import __version__

    return {
        "circuitsweep": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def write_stats(path: Path, stats: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write the statistics shard with ``metadata`` (JSON) in its header."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in stats.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={C.META_KEY: json.dumps(metadata, sort_keys=True)})


def read_stats(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a statistics shard and its metadata as tensors; corrupt files raise :class:`CacheError`."""
    from safetensors.torch import load_file

    return _read(path, load_file, "pt")


def read_stat_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """:func:`read_stats` as NumPy arrays, for jobs that score a cache without importing torch."""
    from safetensors.numpy import load_file

    return _read(path, load_file, "np")


def _read(path: Path, load_file: Any, framework: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        with safe_open(str(path), framework=framework) as handle:
            metadata = json.loads((handle.metadata() or {})[C.META_KEY])
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as error:
        raise CacheError(
            f"{path} is not a readable circuitsweep statistics shard ({error}); delete it and rerun"
        ) from error
    return tensors, metadata
