"""The per-revision head cache: a safetensors shard of statistics and a Parquet file of scores.

Both files carry the run's metadata (model, revision, step, tokens, probes,
first-token policy, dtype, versions) as JSON under :data:`contracts.META_KEY`,
and both are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from circuitsweep import contracts as C
from circuitsweep.atomic import atomic_path
from circuitsweep.errors import CacheError


def software_versions() -> dict[str, str]:
    """Versions of the software that made a cache file, stored in its metadata."""
    import platform

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
    tensors = {name: t.detach().cpu().contiguous() for name, t in stats.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={C.META_KEY: json.dumps(metadata, sort_keys=True)})


def read_stats(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a statistics shard and its metadata; corrupt files raise :class:`CacheError`."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = json.loads((handle.metadata() or {})[C.META_KEY])
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as error:
        raise CacheError(
            f"{path} is not a readable circuitsweep statistics shard ({error}); delete it and rerun"
        ) from error
    return tensors, metadata


def write_table(path: Path, frame: pl.DataFrame, metadata: dict[str, Any]) -> None:
    """Write ``frame`` as Parquet with ``metadata`` (JSON) in the schema metadata."""
    table = frame.to_arrow()
    table = table.replace_schema_metadata({C.META_KEY: json.dumps(metadata, sort_keys=True)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read a Parquet table written by :func:`write_table` and its metadata."""
    try:
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(C.META_KEY.encode())
        metadata = json.loads(raw) if raw else {}
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, json.JSONDecodeError) as error:
        raise CacheError(f"{path} is not a readable Parquet table ({error}); delete it and rerun") from error
    return pl.from_arrow(table), metadata
