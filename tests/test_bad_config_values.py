"""Non-finite numbers and non-integral counts in a config are refused, naming the key (issue 12, case 2).

``thresholds.class_selectivity: .nan`` used to pass every range check and class
every head ``none`` with exit 0; ``n_sequences: 32.0`` died inside the job.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runenv import job_env

from circuitsweep.config import resolve_config
from circuitsweep.errors import ConfigError
from circuitsweep.retry import EXIT_DETERMINISTIC

REPO = Path(__file__).resolve().parents[1]
TOY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
TOY_MODEL = next(iter(TOY["models"]))


def _with(path: str, value) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    node = config
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return config


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("thresholds.class_selectivity", float("nan")),
        ("thresholds.sink_alpha", float("inf")),
        ("thresholds.early_screen_recall", float("-inf")),
        (f"models.{TOY_MODEL}.thresholds.induction_circuit", float("nan")),
        ("probes.induction.n_sequences", 32.0),
        ("probes.batch_size", 16.0),
        ("thresholds.induction_onset_heads", 3.0),
        ("probes.random.seq_len", True),
    ],
)
def test_non_finite_and_non_integral_values_are_named(path, value):
    """Each bad value is a ConfigError whose message names the key."""
    with pytest.raises(ConfigError, match=path.replace(".", r"\.") + ": "):
        resolve_config(_with(path, value))


def test_nan_anywhere_is_named_even_without_a_schema_type():
    """The walk over the config finds a NaN under a key the schema does not type as a number."""
    config = _with(f"models.{TOY_MODEL}.toy.note", float("nan"))
    with pytest.raises(ConfigError, match=rf"models\.{TOY_MODEL}\.toy\.note: nan is not a finite number"):
        resolve_config(config)


def test_check_config_refuses_nan_from_yaml(tmp_path):
    """`circuitsweep check-config` on YAML with `.nan` exits 3 (deterministic) with one line naming the key."""
    text = yaml.safe_dump(_with("thresholds.class_selectivity", float("nan")))
    assert "class_selectivity: .nan" in text
    (tmp_path / "bad.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "circuitsweep", "check-config", str(tmp_path / "bad.yaml"), "--root", str(REPO)],
        capture_output=True, text=True, env=job_env(), timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_DETERMINISTIC
    assert "thresholds.class_selectivity" in result.stderr and "Traceback" not in result.stderr
