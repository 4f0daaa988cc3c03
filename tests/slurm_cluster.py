"""Helpers for tests that run Snakemake through a real single-node SLURM cluster.

Usage in a test module::

    import pytest
    from slurm_cluster import derive_profile, require_cluster, run_snakemake

    pytestmark = pytest.mark.slurm

    def test_something(tmp_path):
        cluster = require_cluster()            # skips with a reason if no cluster
        profile = derive_profile(tmp_path / "profile", cluster)
        result = run_snakemake(snakefile, tmp_path / "work", profile)
        assert result.returncode == 0, result.report()

The cluster is whatever `sinfo` answers with: a node that is idle (or partly
used) in some partition. When none answers and the environment variable
CIRCUITSWEEP_START_SLURM=1 is set, `.ci/slurm/setup.sh` is run once (as root,
or through `sudo -n`) to install and start one; otherwise the test is skipped,
saying how to get one.

The tests use the real `profiles/slurm` profile, through a derived copy
(`derive_profile`) that only adapts it to the test cluster: GPU requests are
dropped when the node has no GPU, threads are capped at the node's size,
measurements run with `device: auto` (the test cluster's GPUs are fakes: torch
sees none and uses the CPU), and job state is polled with squeue (the test
cluster has no accounting database, so sacct cannot work). The job sizes come
from the rules themselves (circuitsweep.plan.resources), like on a real cluster.

For the real workflow: `write_toy_config` writes a one-model toy sweep small enough
for a 2-core node, `workflow_rules` says which rules the Snakefile has and which of
them are local (run in the Snakemake process, never submitted), and `run_command`
runs any Snakemake command line (e.g. the local executor, for comparison) in the
same environment as `run_snakemake`: the interpreter running the tests first on PATH,
which the SLURM jobs inherit (the executor submits with --export=ALL).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from runenv import job_env

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / ".ci" / "slurm" / "setup.sh"
SLURM_PROFILE = REPO_ROOT / "profiles" / "slurm" / "config.yaml"
START_ENV = "CIRCUITSWEEP_START_SLURM"

USABLE_STATES = ("idle", "mix", "mixed")
# resources that ask SLURM for GPUs (see snakemake_executor_plugin_slurm.utils.set_gres_string)
GPU_RESOURCES = ("gpu", "gres", "gpu_model", "cpus_per_gpu", "tasks_per_gpu")
# the rules that load a model and ask for a GPU
GPU_RULES = ("measure_heads", "measure_revision", "final_ablation")
# resources naming things of a real cluster that the test cluster does not have
SITE_RESOURCES = ("slurm_partition", "slurm_account", "constraint", "qos", "clusters", "cluster", "slurm_cluster")


class SlurmUnavailable(RuntimeError):
    """No usable SLURM cluster; the message says why and how to get one."""


@dataclass(frozen=True)
class SlurmCluster:
    node: str
    partition: str  # the partition the node is usable in (the default one if it is in several)
    cpus: int
    mem_mb: int
    gpus: int  # GPUs SLURM schedules on the node (.ci/slurm/setup.sh fakes one)
    gpu_partition: str | None = None  # another partition of the node, when the node has GPUs


def _run(cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _gpu_count(gres: str) -> int:
    """'gpu:2,shard:4' or 'gpu:a100:2(S:0)' -> 2; '(null)' -> 0."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu":
            try:
                total += int(parts[-1]) if len(parts) > 1 else 1
            except ValueError:
                total += 1
    return total


def probe() -> SlurmCluster:
    """The usable node of the running cluster, or SlurmUnavailable with the reason."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        raise SlurmUnavailable("SLURM client commands (sinfo, sbatch) are not installed")
    try:
        out = _run(["sinfo", "--noheader", "--Node", "--format=%N|%P|%t|%c|%m|%G"])
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable("sinfo did not answer within 15 s (slurmctld down?)") from None
    if out.returncode != 0:
        raise SlurmUnavailable(f"sinfo failed: {(out.stderr or out.stdout).strip()}")
    rows = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 5]
    if not rows:
        raise SlurmUnavailable("sinfo lists no nodes")
    usable = [r for r in rows if r[2].rstrip("*~#!%$@^-") in USABLE_STATES]
    if not usable:
        states = ", ".join(f"{r[0]}@{r[1]}={r[2]}" for r in rows)
        raise SlurmUnavailable(f"no SLURM node is idle ({states})")
    # prefer the default partition (marked '*')
    usable.sort(key=lambda r: not r[1].endswith("*"))
    node, partition, _state, cpus, mem, gres = usable[0]
    gpus = _gpu_count(gres)
    others = [r[1].rstrip("*") for r in usable if r[0] == node and r[1] != partition]
    return SlurmCluster(
        node=node,
        partition=partition.rstrip("*"),
        cpus=int(cpus.rstrip("+")),
        mem_mb=int(mem.rstrip("+")),
        gpus=gpus,
        gpu_partition=(sorted(others, key=lambda name: name != "gpu")[0] if others and gpus else None),
    )


def start_cluster(timeout: float = 900) -> str:
    """Run .ci/slurm/setup.sh (as root or via `sudo -n`); return its output."""
    cmd = ["bash", str(SETUP_SCRIPT)]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise SlurmUnavailable(f"{SETUP_SCRIPT} needs root and sudo is not installed")
        cmd = [
            "sudo",
            "-n",
            "--preserve-env=CIRCUITSWEEP_SLURM_FAKE_GPUS,CIRCUITSWEEP_SLURM_PARTITION,CIRCUITSWEEP_SLURM_GPU_PARTITION",
            *cmd,
        ]
    started = time.monotonic()
    try:
        res = _run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"{SETUP_SCRIPT} did not finish within {timeout:.0f} s") from None
    output = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise SlurmUnavailable(f"{SETUP_SCRIPT} failed (exit {res.returncode}):\n{output[-3000:]}")
    return f"{output}\n(setup took {time.monotonic() - started:.0f} s)"


@functools.cache
def ensure_cluster(start: bool | None = None) -> SlurmCluster:
    """The running cluster; start one first when allowed (start=None: env CIRCUITSWEEP_START_SLURM=1).

    Cached: the probe (and a start) happens once per test session.
    """
    if start is None:
        start = os.environ.get(START_ENV, "") == "1"
    try:
        return probe()
    except SlurmUnavailable as exc:
        if not start:
            raise SlurmUnavailable(
                f"{exc}; start a single-node cluster with `sudo {SETUP_SCRIPT.relative_to(REPO_ROOT)}` "
                f"or let the tests do it with {START_ENV}=1"
            ) from None
        first_reason = str(exc)
    start_cluster()
    try:
        return probe()
    except SlurmUnavailable as exc:
        raise SlurmUnavailable(f"{exc} (even after running setup.sh; before it: {first_reason})") from None


def require_cluster() -> SlurmCluster:
    """ensure_cluster() for tests: pytest.skip with the reason when there is no cluster."""
    import pytest

    try:
        return ensure_cluster()
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM cluster: {exc}")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_profile(path: Path = SLURM_PROFILE) -> dict[str, Any]:
    with open(path) as fh:
        profile = yaml.safe_load(fh)
    if not isinstance(profile, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return profile


def adapt_profile(
    profile: dict[str, Any], cluster: SlurmCluster, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The real profile made to fit `cluster` (see module docstring); `extra` is deep-merged last
    (a None value deletes a key)."""
    out = copy.deepcopy(profile)
    mem_cap = max(256, int(cluster.mem_mb * 0.8))
    for _rule, res in (out.get("set-resources") or {}).items():
        for key in SITE_RESOURCES:
            res.pop(key, None)
        if cluster.gpus == 0:
            for key in GPU_RESOURCES:
                res.pop(key, None)
        elif isinstance(res.get("gpu"), int):
            res["gpu"] = min(res["gpu"], cluster.gpus)
        if isinstance(res.get("mem_mb"), int):
            res["mem_mb"] = min(res["mem_mb"], mem_cap)
    if cluster.gpus == 0:  # the rules ask for gpu=1 on their own: ask for none
        for rule in GPU_RULES:
            out.setdefault("set-resources", {}).setdefault(rule, {})["gpu"] = 0
    # fake GPUs: torch sees none, so `device: cuda` would (rightly) fail at once
    out["config"] = {**(out.get("config") or {}), "device": "auto"}
    for rule, threads in (out.get("set-threads") or {}).items():
        if isinstance(threads, int):
            out["set-threads"][rule] = min(threads, cluster.cpus)
    out["local-cores"] = min(int(out.get("local-cores", cluster.cpus)), cluster.cpus)
    out.update(
        {
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "slurm-keep-successful-logs": True,
            "latency-wait": 5,
        }
    )
    return _deep_merge(out, extra or {})


def derive_profile(
    dest: Path, cluster: SlurmCluster, extra: dict[str, Any] | None = None, base: Path = SLURM_PROFILE
) -> Path:
    """Write the adapted profile to dest/config.yaml; return dest (pass it to --workflow-profile)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    profile = adapt_profile(load_profile(base), cluster, extra)
    (dest / "config.yaml").write_text(
        f"# derived from {base} for the test cluster (node {cluster.node})\n" + yaml.safe_dump(profile, sort_keys=False)
    )
    return dest


@dataclass
class SnakemakeRun:
    cmd: list[str]
    workdir: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def slurm_logs(self, max_chars: int = 4000) -> str:
        logs = sorted((self.workdir / "logs" / "slurm").rglob("*.log")) + sorted(
            (self.workdir / ".snakemake" / "slurm_logs").rglob("*.log")
        )
        text = "".join(f"--- {p}\n{p.read_text(errors='replace')}\n" for p in logs)
        return text[-max_chars:]

    def report(self) -> str:
        """Everything needed to see why a run failed, for assertion messages."""
        squeue = _run(["squeue", "--states=all", "--format=%i %j %T %r %M"]).stdout if shutil.which("squeue") else ""
        return (
            f"$ {' '.join(self.cmd)}\n(exit {self.returncode} after {self.seconds:.0f} s)\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-6000:]}\n"
            f"--- slurm logs\n{self.slurm_logs()}\n--- squeue\n{squeue}"
        )


def snakemake_command(snakefile: Path, workdir: Path, profile: Path, *args: str, jobs: int | None = None) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--workflow-profile",
        str(profile),
        "--executor",
        "slurm",
        "--nocolor",
    ]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    return cmd + list(args)


def snakemake_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Snakemake process and (through sbatch --export=ALL) its jobs."""
    run_env = job_env(env)
    # the SLURM tests read Snakemake's job blocks (which job went where): keep them on the console
    run_env.setdefault("CIRCUITSWEEP_CONSOLE", "full")
    # a test run inside a SLURM allocation must not leak it into the submitted jobs
    for name in [n for n in run_env if n.startswith("SLURM_")]:
        del run_env[name]
    return run_env


def run_command(cmd: list[str], workdir: Path, timeout: float = 600, env: dict[str, str] | None = None) -> SnakemakeRun:
    """Run a Snakemake command line in `workdir` with snakemake_env(env); never raises on failure."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=snakemake_env(env), cwd=workdir)
        code, out, err = res.returncode, res.stdout, res.stderr
    except subprocess.TimeoutExpired as exc:
        code = -1
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")) + (
            f"\n[timed out after {timeout:.0f} s]"
        )
    return SnakemakeRun(cmd, workdir, code, out, err, time.monotonic() - started)


def run_snakemake(
    snakefile: Path,
    workdir: Path,
    profile: Path,
    *args: str,
    jobs: int | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> SnakemakeRun:
    """Run snakemake through the slurm executor with `profile`; never raises on failure."""
    cmd = snakemake_command(snakefile, workdir, profile, *args, jobs=jobs)
    return run_command(cmd, workdir, timeout=timeout, env=env)


# --- the real workflow ------------------------------------------------------------------

WORKFLOW_SNAKEFILE = REPO_ROOT / "workflow/Snakefile"

# A toy sweep of the real workflow small enough for a 2-core test node: one toy model,
# three revisions, short probes, no primitives (about 40-60 s locally).
#: The toy sweep of the SLURM tests, one of the small configs CI runs (.test/).
TOY_SWEEP_CONFIG = (REPO_ROOT / ".test" / "config" / "toy-sweep.yaml").read_text()


def write_toy_config(path: Path, primitives: bool = False) -> Path:
    """TOY_SWEEP_CONFIG at ``path``; ``primitives``: with the primitives stage (every rule runs: step0 and
    step20 get primitives, so measure_revision measures them and measure_heads step10)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = TOY_SWEEP_CONFIG
    if primitives:
        text = text.replace("    primitives: {enabled: false}\n", "    primitives: {revisions: {every: 2}}\n")
    path.write_text(text)
    return path


@dataclass(frozen=True)
class WorkflowRules:
    names: tuple[str, ...]  # every rule of the workflow, in definition order
    local: frozenset[str]  # rules that run in the Snakemake process, never as cluster jobs

    @property
    def submitted(self) -> frozenset[str]:
        """The rules whose jobs a cluster executor submits."""
        return frozenset(self.names) - self.local


# Snakemake has no command-line option that says which rules are local (`--list-rules`
# gives only the names), so ask the workflow object, as the executor does: a rule is
# local if named in `localrules:`, marked `localrule: True` (both end up in
# Workflow._localrules) or has nothing to run (norun, e.g. `all`).
_RULES_SCRIPT = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

snakefile, workdir, configfile = map(Path, sys.argv[1:4])
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[configfile]),
        snakefile=snakefile,
        workdir=workdir,
    )._workflow
    names = [rule.name for rule in workflow.rules]
    local = [rule.name for rule in workflow.rules if rule.name in workflow._localrules or rule.norun]
print("RULES=" + json.dumps({"names": names, "local": local}))
"""


def workflow_rules(configfile: Path, workdir: Path, snakefile: Path = WORKFLOW_SNAKEFILE) -> WorkflowRules:
    """The rules of the real workflow (loaded with `configfile`, working directory `workdir`)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [sys.executable, "-c", _RULES_SCRIPT, str(snakefile), str(workdir), str(configfile)],
        capture_output=True, text=True, timeout=300, env=snakemake_env(), cwd=workdir, check=False,
    )  # fmt: skip
    lines = [line for line in res.stdout.splitlines() if line.startswith("RULES=")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"could not load the rules of {snakefile} (exit {res.returncode}):\n{res.stderr[-4000:]}")
    found = yaml.safe_load(lines[-1].removeprefix("RULES="))
    # cross-check with the public interface
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--nocolor", "-s", str(snakefile), "-d", str(workdir),
         "--configfile", str(configfile)],
        capture_output=True, text=True, timeout=300, env=snakemake_env(), cwd=workdir, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        raise RuntimeError(f"snakemake --list-rules failed:\n{listed.stderr[-4000:]}")
    # one name per line; a rule's docstring follows on indented lines
    listed_names = {line.strip() for line in listed.stdout.splitlines() if re.fullmatch(r"\w+\s*", line)}
    if listed_names != set(found["names"]):
        raise RuntimeError(f"--list-rules says {sorted(listed_names)}, the workflow object {found['names']}")
    return WorkflowRules(names=tuple(found["names"]), local=frozenset(found["local"]))
