"""The head cache: metadata travels with the data, and damaged files are reported, never read as data."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from circuitsweep.errors import CacheError
from circuitsweep.io.stats import read_stats, write_stats
from circuitsweep.io.tables import read_table, write_table

METADATA = {"model": "m", "revision": "step1", "tokens": 10, "probes": {"induction": {"seed": 42}}}


def test_stats_round_trip_with_metadata(tmp_path):
    """Tensors and metadata read back exactly as written."""
    stats = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2])}
    write_stats(tmp_path / "s.safetensors", stats, METADATA)
    tensors, metadata = read_stats(tmp_path / "s.safetensors")
    assert metadata == METADATA
    assert all(torch.equal(tensors[k], stats[k]) for k in stats)


def test_table_round_trip_with_metadata(tmp_path):
    """A Parquet table and its metadata read back exactly as written."""
    frame = pl.DataFrame({"layer": [0, 1], "score": [0.5, 1.5]})
    write_table(tmp_path / "t.parquet", frame, METADATA)
    table, metadata = read_table(tmp_path / "t.parquet")
    assert metadata == METADATA and table.equals(frame)


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_stats_are_a_cache_error(tmp_path, keep):
    """A shard cut short (an interrupted copy) raises CacheError naming the file."""
    path = tmp_path / "s.safetensors"
    write_stats(path, {"a": torch.ones(64, 64)}, METADATA)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CacheError, match="s.safetensors"):
        read_stats(path)


def test_truncated_table_is_a_cache_error(tmp_path):
    """A Parquet file cut short raises CacheError naming the file."""
    path = tmp_path / "t.parquet"
    write_table(path, pl.DataFrame({"x": list(range(1000))}), METADATA)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CacheError, match="t.parquet"):
        read_table(path)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    """A writer interrupted after writing part of the shard leaves neither the target nor a temporary file."""

    def interrupted(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a shard")
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_stats(tmp_path / "s.safetensors", {"a": torch.ones(2)}, METADATA)
    assert list(tmp_path.iterdir()) == []
