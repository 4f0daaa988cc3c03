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

from circuitsweep.config.load import resolve_config
from circuitsweep.errors import ConfigError
from circuitsweep.plan.retry import EXIT_DETERMINISTIC

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


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("ablation.random_seed", 2**32),
        ("probes.induction.seed", 2**32),
        ("probes.induction.baseline_seed", 2**40),
        ("probes.repeated.seed", 2**64),
        ("probes.natural_text.baseline_seed", 2**32),
        ("ablation.random_draws", 1_000_000),
    ],
)
def test_seeds_and_counts_beyond_what_the_code_holds_are_named(path, value):
    """Seeds of 2^32 or more (numpy's RandomState refuses them inside the job) and a random_draws count that
    would run without end are refused at planning, naming the key."""
    config = _with(path, value)
    config.setdefault("ablation", {}).setdefault("enabled", True)
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        resolve_config(config)


def test_the_runtime_estimate_counts_the_ablation_passes():
    """Each matched-random draw is one more pass over the ablation probe, so it lengthens the job's runtime."""
    from circuitsweep.config.load import resolve_ablation
    from circuitsweep.plan import costs
    from circuitsweep.plan import resources as R

    plan_config = _with("ablation.enabled", True)
    model = resolve_config(plan_config)[TOY_MODEL]
    shape = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 50000}
    probes = model.probes.to_dict()
    ablation, _, _ = resolve_ablation(plan_config)

    def size(settings: dict | None) -> R.JobSize:
        return R.measure_size(shape, "float32", probes, "cuda", costs.revision_work(probes, settings, shape))

    few = size({**vars(ablation), "random_draws": 5})
    many = size({**vars(ablation), "random_draws": 1000})
    without = size(None)
    assert without.runtime < few.runtime < many.runtime
    assert many.runtime > 10 * without.runtime


def test_a_step_beyond_int64_is_refused_naming_the_folder(tmp_path):
    """A checkpoint folder whose step (or step x per_step) exceeds what the tables hold is one line naming it,
    not Snakemake's PeriodicWildcardError or a polars overflow."""
    from circuitsweep.plan.sweep import plan_sweep

    for name in ("checkpoint-1", "checkpoint-100000000000000000000"):
        (tmp_path / "run" / name).mkdir(parents=True)
    config = {
        "primitives": {"enabled": False},
        "models": {
            "my-run": {
                "architecture": "LlamaForCausalLM",
                "source": {"type": "run_dir", "path": str(tmp_path / "run")},
                "revisions": "all",
                "tokens": {"per_step": 2048},
            }
        },
    }
    with pytest.raises(ConfigError, match=r"revision checkpoint-100000000000000000000: step 100000000000000000000"):
        plan_sweep(config, REPO)
    (tmp_path / "run" / "checkpoint-100000000000000000000").rmdir()
    (tmp_path / "run" / "checkpoint-9000000000000000").mkdir()
    with pytest.raises(ConfigError, match=r"checkpoint-9000000000000000: tokens 18432000000000000000 is outside"):
        plan_sweep(config, REPO)


def test_token_counts_read_from_branch_names_are_bounded():
    """``step1-tokens99999999999T`` names more tokens than an int64 holds: not a usable checkpoint name."""
    from circuitsweep.checkpoints.revisions import parse_branches

    with pytest.raises(ValueError, match=r"tokens 99999999999000000000000 is outside 0 \.\. 2\^63-1"):
        parse_branches(["step1-tokens99999999999T"])
