"""Deterministic failures are not retried larger (issue 14): exit code 3, a record, no growth, a fast replay.

Snakemake retries every failure alike; a job that failed on bad data used to come back
with twice and three times the memory and time and repeat the whole failing work.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runenv import job_env

from circuitsweep.checkpoints import hub
from circuitsweep.errors import CacheError, ConfigError, DataError, SnapshotError
from circuitsweep.plan import retry
from circuitsweep.plan.sizing import InsufficientMemoryError

BAD_CONFIG = "models: {m: {architecture: GPTNeoXForCausalLM}}\n"


def _caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "deterministic"),
    [
        (ConfigError("models.m.probes: bad"), True),
        (DataError("NaN scores"), True),
        (CacheError("foreign cache: delete it and rerun"), True),
        (SnapshotError("weights are not those planned"), True),
        (hub.UnknownRevisionError("no branch step7"), True),
        (hub.UnknownRepoError("no repository"), True),
        (hub.LocalCopyDamaged("a local blob changed"), True),
        # a retry may fix these
        (InsufficientMemoryError("needs 6 GiB, more than mem_mb"), False),
        (hub.HubError("download failed after 5 attempts"), False),
        (hub.VerificationError("sha256 mismatch"), False),
        (_caused(CacheError("cannot read cache"), OSError(5, "Input/output error")), False),
        (RuntimeError("CUDA out of memory"), False),
        (MemoryError(), False),
    ],
)
def test_which_failures_are_deterministic(error, deterministic):
    assert retry.is_deterministic(error) is deterministic


def test_job_key_ignores_what_changes_between_attempts():
    assert retry.job_key(["measure-heads", "--mem-mb", "7000", "--threads", "4", "--stats", "s"]) == [
        "measure-heads", "--stats", "s",
    ]  # fmt: skip
    assert retry.job_key(["x", "--mem-mb=14000"]) == ["x"]


def test_sizing_attempt_stays_at_one_after_a_deterministic_failure(tmp_path):
    """Attempt 1 deletes a record of an earlier run; later attempts grow unless the record exists."""
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir()
    assert retry.sizing_attempt(None, 3) == 3
    assert retry.sizing_attempt(log, 2) == 2
    retry.record_path(log).write_text("{}")
    assert retry.sizing_attempt(log, 2) == 1 and retry.sizing_attempt(log, 3) == 1
    assert retry.sizing_attempt(log, 1) == 1 and not retry.record_path(log).exists()
    assert retry.sizing_attempt(log, 2) == 2


def test_job_log_fills_the_rules_log_pattern(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pattern = "results/logs/measure_heads/{model}/{revision,[^/]+}.log"
    assert (
        retry.job_log([pattern], {"model": "m", "revision": "step1"})
        == (tmp_path / "results/logs/measure_heads/m/step1.log").resolve()
    )
    assert retry.job_log([], {"model": "m"}) is None


def _cli(args: list[str], log: Path | None, cwd: Path, attempt: int | None = None) -> subprocess.CompletedProcess:
    """`python -m circuitsweep ARGS`, stderr to ``log`` as a rule sends it (or captured when None).

    ``attempt``: the Snakemake attempt a rule passes (None: a command run by hand)."""
    cmd = [sys.executable, "-m", "circuitsweep", *([] if attempt is None else ["--attempt", str(attempt)]), *args]
    env = job_env()
    if log is None:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    with open(log, "w") as handle:
        return subprocess.run(cmd, cwd=cwd, env=env, stdout=handle, stderr=handle, timeout=120, check=False)


def test_cli_records_a_deterministic_failure_and_a_retry_replays_it(tmp_path):
    """Exit 3 and a record beside the log; a later attempt of the same job with the same inputs repeats the
    error without running; other arguments, or the same arguments after the input changed, run afresh."""
    config = tmp_path / "c.yaml"
    config.write_text(BAD_CONFIG)
    log = tmp_path / "job.log"
    args = ["check-config", str(config), "--root", str(Path(__file__).resolve().parents[1])]
    first = _cli(args, log, tmp_path, attempt=1)
    assert first.returncode == retry.EXIT_DETERMINISTIC, log.read_text()
    message = log.read_text().rstrip("\n")
    assert message.startswith("circuitsweep check-config: error: ") and "Traceback" not in log.read_text()
    record = json.loads(retry.record_path(log).read_text())
    assert record["argv"] == args and record["attempt"] == 1 and record["message"] == message
    assert [entry[0] for entry in record["inputs"]] == [str(config.resolve())]

    replay = _cli(args, log, tmp_path, attempt=2)
    assert replay.returncode == retry.EXIT_DETERMINISTIC
    assert log.read_text().startswith(message + "\n(repeated from the previous attempt of this job")
    # other arguments (another job) are not replayed
    _cli(["check-config", str(config)], log, tmp_path, attempt=3)
    assert "repeated from the previous attempt" not in log.read_text()

    _cli(args, log, tmp_path, attempt=1)
    config.write_text("models: {}\n")  # fixed between two attempts: the inputs changed, it runs again
    fixed = _cli(args, log, tmp_path, attempt=2)
    assert "repeated from" not in log.read_text() and "models" in log.read_text(), log.read_text()
    assert fixed.returncode == retry.EXIT_DETERMINISTIC  # now an empty models list, a different error

    config.write_text(BAD_CONFIG)
    _cli(args, log, tmp_path, attempt=1)
    assert retry.record_path(log).exists()
    again = _cli(args, log, tmp_path, attempt=1)  # a new run of the workflow (attempt 1) runs afresh
    assert again.returncode == retry.EXIT_DETERMINISTIC and "repeated from" not in log.read_text()


def test_a_command_run_by_hand_never_replays_nor_records(tmp_path):
    """Issue 22: `circuitsweep check-config my.yaml > check.log 2>&1` after my.yaml is fixed runs afresh, and a
    hand-written check.log.deterministic (or one left by a workflow job) is never replayed for it."""
    config = tmp_path / "my.yaml"
    config.write_text(BAD_CONFIG)
    log = tmp_path / "check.log"
    args = ["check-config", str(config), "--root", str(Path(__file__).resolve().parents[1])]
    first = _cli(args, log, tmp_path)
    assert first.returncode == retry.EXIT_DETERMINISTIC
    assert not retry.record_path(log).exists()
    config.write_text((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    for record in (
        {"argv": args, "message": "circuitsweep check-config: error: forged"},
        {"argv": args, "attempt": 1, "inputs": retry.input_stamp(args), "message": "forged"},
    ):
        retry.record_path(log).write_text(json.dumps(record))
        fixed = _cli(args, log, tmp_path)
        assert fixed.returncode == 0, log.read_text()
        assert "forged" not in log.read_text()


def test_cli_without_a_log_file_records_nothing(tmp_path):
    """stderr to a pipe (a terminal, a test): exit 3, no record anywhere."""
    config = tmp_path / "c.yaml"
    config.write_text(BAD_CONFIG)
    result = _cli(["check-config", str(config)], None, tmp_path)
    assert result.returncode == retry.EXIT_DETERMINISTIC and "error:" in result.stderr
    assert not list(tmp_path.glob("*" + retry.RECORD_SUFFIX))


# Rules of the workflow's shape (log, resources scaled by retry.sizing_attempt, as common.smk's
# small_resource): one fails deterministically, one crashes; `--retries 2`.
SNAKEFILE = """
from circuitsweep.plan.retry import attempt_resource, job_log, sizing_attempt

def mem(wildcards, attempt, rulename):
    return 100 * sizing_attempt(job_log(getattr(rules, rulename).log, dict(wildcards.items())), attempt)

rule check:
    input: "{name}.yaml"
    output: "{name}.ok"
    log: "logs/{name}.log"
    resources: mem_mb=mem, attempt=attempt_resource
    shell: "python -m circuitsweep --attempt {resources.attempt} check-config {input} > {log} 2>&1"
        " && touch {output}"

rule crash:
    output: "crashed.ok"
    log: "logs/crash.log"
    resources: mem_mb=mem, attempt=attempt_resource
    shell: "python -c 'raise SystemExit(1)' > {log} 2>&1 && touch {output}"
"""


def _sizes_by_rule(out: str) -> dict[str, list[int]]:
    sizes: dict[str, list[int]] = {}
    for block in re.split(r"\n\s*\n", out):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        mem = re.search(r"^\s*resources: .*mem_mb=(\d+)", block, re.M)
        if rule and mem:
            sizes.setdefault(rule.group(1), []).append(int(mem.group(1)))
    return sizes


def test_workflow_retries_a_deterministic_failure_at_the_first_size_and_fast(tmp_path):
    """Three attempts of the deterministic failure all ask for 100 MB (not 200, 300), and attempts 2 and 3
    replay the first error; the crash is retried larger (a retry may fix it)."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    (tmp_path / "bad.yaml").write_text(BAD_CONFIG)
    cmd = [sys.executable, "-m", "snakemake", "-c1", "--retries", "2", "--keep-going", "--nocolor", "bad.ok",
           "crashed.ok"]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert _sizes_by_rule(out) == {"check": [100, 100, 100], "crash": [100, 200, 300]}, out
    log = (tmp_path / "logs" / "bad.log").read_text()
    assert "repeated from the previous attempt of this job" in log, log


def test_a_new_run_runs_afresh_under_set_resources(tmp_path):
    """Issue 22: with `--set-resources check:mem_mb=...` (no sizing callable deletes the record), a new run
    runs the job again instead of replaying the old error (same inputs here: only the new run tells it apart)."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    (tmp_path / "bad.yaml").write_text(BAD_CONFIG)
    cmd = [sys.executable, "-m", "snakemake", "bad.ok", "-c1", "--nocolor", "--set-resources", "check:mem_mb=500"]
    first = subprocess.run(cmd, cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode != 0 and retry.record_path(tmp_path / "logs" / "bad.log").exists()
    second = subprocess.run(cmd, cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=300)
    log = (tmp_path / "logs" / "bad.log").read_text()
    assert second.returncode != 0 and "repeated from" not in log, log
