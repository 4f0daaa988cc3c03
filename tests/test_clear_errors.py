"""Bad input gets one line naming the key, file or URL, never a traceback (issue 12, case 5).

Config-level problems are refused by ``circuitsweep check-config`` (the checks
the workflow runs at DAG build) within a second and without importing torch;
job-level ones (no CUDA, a tokenizer that cannot be built) by the job itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runenv import job_env

from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.plan.retry import EXIT_DETERMINISTIC

REPO = Path(__file__).resolve().parents[1]
TOY_TEXT = (REPO / "config" / "config.yaml").read_text()
TOY_MODEL = next(iter(yaml.safe_load(TOY_TEXT)["models"]))
TOY_LAST_STEP = yaml.safe_load(TOY_TEXT)["models"][TOY_MODEL]["toy"]["schedule"][-1]


def check_config(path: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run `circuitsweep check-config` on ``path`` (relative paths against the repository)."""
    return subprocess.run(
        [sys.executable, "-m", "circuitsweep", "check-config", str(path), "--root", str(REPO), *extra],
        capture_output=True, text=True, env=job_env(), timeout=120, check=False,
    )  # fmt: skip


def refused(result: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit 3 (a user error a rerun would repeat) with a message (no traceback) containing every ``expected`` text."""
    assert result.returncode == EXIT_DETERMINISTIC, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert all(text in result.stderr for text in expected), result.stderr


def toy_config(tmp_path: Path, change) -> Path:
    config = yaml.safe_load(TOY_TEXT)
    change(config["models"][TOY_MODEL])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("branch_format", "message"),
    [
        ("step{stepp}", "is not a branch name containing {step}"),
        ("ckpt{step}", "is not a checkpoint name"),
        ("step{step}/x", "not a safe file name"),
        ("step{ktokens}", "is not a branch name containing {step}"),
        ("step{step}{stepp}", "cannot be formatted (KeyError: 'stepp')"),
    ],
)
def test_bad_branch_format_is_named_at_config_time(tmp_path, branch_format, message):
    """A branch format that cannot name every step as a distinct checkpoint is refused, naming the key."""
    path = toy_config(tmp_path, lambda m: m["toy"].update(branch_format=branch_format))
    refused(check_config(path), f"models.{TOY_MODEL}.toy.branch_format", message)


def test_toy_settings_are_checked_at_config_time_without_torch(tmp_path):
    """Toy settings that cannot build a model fail at planning, which imports no torch."""
    path = toy_config(tmp_path, lambda m: m["toy"].update(hidden_size=100, num_heads=8))
    refused(check_config(path), f"models.{TOY_MODEL}.toy: hidden_size 100 is not a multiple of num_heads 8")
    code = (
        "import sys; from pathlib import Path; from circuitsweep.config.load import load_config; "
        "from circuitsweep.plan.sweep import plan_sweep; from circuitsweep.errors import ConfigError\n"
        f"try: plan_sweep(load_config({str(path)!r}), Path({str(REPO)!r}))\n"
        "except ConfigError: pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=job_env(), timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ({"span_min": 10, "span_max": 2}, "toy: span lengths 10..2 must satisfy span_min <= span_max"),
        ({"span_min": 40, "span_max": 40}, "toy: span_min 40 leaves no room for a copy"),
    ],
)
def test_copied_spans_that_cannot_be_written_are_named_at_config_time(tmp_path, spans, message):
    """Copied spans that cannot be drawn (span_min above span_max) or never fit twice in a sequence are refused at
    planning, naming the key; before, the first failed in the training job with torch's message and the second
    trained a toy with no copies."""
    path = toy_config(tmp_path, lambda m: m["toy"].update(spans))
    refused(check_config(path), f"models.{TOY_MODEL}.{message}")


def test_toy_tokens_per_step_mismatch_is_named_at_config_time(tmp_path):
    """tokens.per_step that disagrees with the toy's batch x seq_len is refused before training."""
    path = toy_config(tmp_path, lambda m: m["tokens"].update(per_step=7))
    refused(check_config(path), f"models.{TOY_MODEL}.tokens.per_step: 7 disagrees")


def test_toy_vocabulary_that_the_probes_overrun_is_named_at_config_time(tmp_path):
    """A toy trained with fewer ids than the probes draw (or than the fixed first token's id) is refused at
    planning, naming the key; before, it trained and then failed at its first measurement."""
    path = toy_config(tmp_path, lambda m: m["toy"].update(vocab_size=20))
    refused(check_config(path), f"models.{TOY_MODEL}.probes.token_range: [2, ", "past the toy's vocabulary of 20")

    def small_vocabulary_with_its_own_probes(model: dict) -> None:
        model["toy"].update(vocab_size=28)
        model["probes"] = {"token_range": [2, 28]}
        model["first_token"] = {"policy": "fixed", "token_id": 30}

    path = toy_config(tmp_path, small_vocabulary_with_its_own_probes)
    result = check_config(path)
    refused(result, f"models.{TOY_MODEL}.first_token.token_id: 30 is outside the toy's vocabulary of 28")
    assert "probes.token_range" not in result.stderr


def _renamed_model(config: dict) -> None:
    config["models"]["toy/olmo"] = config["models"].pop("toy-olmo")


def _reversed_top_level_token_range(config: dict) -> None:
    config["probes"]["token_range"] = [64, 2]


def _top_level_range_past_every_toys_vocabulary(config: dict) -> None:
    config["probes"]["token_range"] = [2, 29]


def _top_level_probe_longer_than_every_toys_context(config: dict) -> None:
    config["probes"]["induction"] = {"n_sequences": 512, "seq_len": 4096}


def _unpublished_step(config: dict) -> None:
    config["models"][TOY_MODEL]["revisions"] = ["step250", "step9999"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _renamed_model,
            "models: the key 'toy/olmo' is not one safe path component: letters, digits, '_', '.', '-', starting "
            "with a letter or digit",
        ),
        (_reversed_top_level_token_range, "(1 problem): probes.token_range: [64, 2] must hold at least 3 token ids"),
        # checks against each model's vocabulary or context, too, name the top-level key once, not once per model
        (
            _top_level_range_past_every_toys_vocabulary,
            "(1 problem): probes.token_range: [2, 29) reaches past the toy's vocabulary of 28 ids",
        ),
        (
            _top_level_probe_longer_than_every_toys_context,
            "(1 problem): probes.induction.seq_len: 4096 exceeds the model's context of 64 positions",
        ),
        (_unpublished_step, f"unknown revision(s) for {TOY_MODEL}: 'step9999' (closest: step{TOY_LAST_STEP});"),
    ],
)
def test_copied_config_mistakes_are_one_plain_line(tmp_path, change, message):
    """A reviewer's edits of config/config.yaml: a model key with '/', a bad top-level probe range that every toy
    inherits, a step that is not published. Each is one line in plain words naming the key the user wrote."""
    config = yaml.safe_load(TOY_TEXT)
    change(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = check_config(path)
    refused(result, message)
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "matching" not in result.stderr and "models.toy-olmo.probes" not in result.stderr


def test_non_utf8_config_is_named(tmp_path):
    """A config saved in another encoding is one line naming the file."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(TOY_TEXT.replace("# ", "# caf\xe9 ", 1).encode("latin-1"))
    refused(check_config(path), str(path), "is not UTF-8")


@pytest.mark.parametrize("text", ["", "\n# the sweep of my run\n"])
def test_empty_config_is_named_as_empty(tmp_path, text):
    """An empty config file (or one of comments only) says so, naming the file, not "got NoneType"."""
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    result = check_config(path)
    refused(result, str(path), "the config file is empty")
    assert "NoneType" not in result.stderr


def test_duplicate_model_key_is_an_error(tmp_path):
    """A model listed twice is an error naming the key and both lines, not 'last one wins'."""
    path = tmp_path / "dup.yaml"
    entry = TOY_TEXT.split(f"  {TOY_MODEL}:", 1)[1].split("\n  toy-", 1)[0]
    path.write_text(TOY_TEXT.replace(f"  {TOY_MODEL}:", f"  {TOY_MODEL}:{entry}\n  {TOY_MODEL}:", 1))
    refused(check_config(path), f"duplicate key '{TOY_MODEL}'", "first on line")


def test_duplicate_model_key_stops_the_workflow(tmp_path):
    """Snakemake's own YAML reader would keep the second entry; the workflow re-reads strictly and stops."""
    path = tmp_path / "dup.yaml"
    entry = TOY_TEXT.split(f"  {TOY_MODEL}:", 1)[1].split("\n  toy-", 1)[0]
    path.write_text(TOY_TEXT.replace(f"  {TOY_MODEL}:", f"  {TOY_MODEL}:{entry}\n  {TOY_MODEL}:", 1))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow/Snakefile"), "--configfile", str(path), "-n"],
        capture_output=True, text=True, env=job_env(), cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and f"duplicate key '{TOY_MODEL}'" in result.stdout + result.stderr


def test_file_endpoint_is_named(tmp_path):
    """endpoint: file:/// is not a Hub: refused at config time naming the key."""
    config = {
        "models": {
            "m": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {"type": "hub", "repo_id": "org/m", "endpoint": "file:///srv/hub"},
                "revisions": ["step1"],
                "tokens": {"per_step": 10},
            }
        },
        "primitives": {"enabled": False},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    refused(check_config(path), "models.m.source.endpoint: 'file:///srv/hub' is not an http(s) URL")


def test_stimuli_that_are_not_a_mapping_are_named_not_printed(tmp_path):
    """A stimuli file holding a list is named with what it holds, without echoing its content."""
    from circuitsweep.config.stimuli import load_stimuli

    path = tmp_path / "stimuli.yaml"
    path.write_text("\n".join(f"- secret-word-{i}" for i in range(100)))
    with pytest.raises(ConfigError) as info:
        load_stimuli(path)
    assert str(path) in str(info.value) and "got a list" in str(info.value)
    assert "secret-word" not in str(info.value)


def test_cuda_without_cuda_is_a_config_error(monkeypatch):
    """device: cuda on a machine without CUDA names the key and what to do."""
    import torch

    from circuitsweep.checkpoints.loading import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device: 'cuda' is configured but torch sees no CUDA device.*device: auto"):
        resolve_device("cuda")


def test_tokenizer_that_cannot_be_built_names_the_snapshot(tmp_path):
    """Broken tokenizer files are one SnapshotError naming the snapshot folder."""
    from circuitsweep.primitives.stage import build_tokenizer

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    (tmp_path / "tokenizer.json").write_text("{not json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPTNeoXTokenizerFast"}))
    with pytest.raises(SnapshotError, match=rf"{tmp_path}: the tokenizer files cannot be built"):
        build_tokenizer(tmp_path)
