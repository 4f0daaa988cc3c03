"""How fast Snakemake plans the all-branches sweep (issue: at most 30 s on 2 cores).

The bundled OLMo manifest is partial offline, so this builds a complete
stand-in (1,446 branches named as AI2 names them) and plans
``config/full.yaml`` against it with ``snakemake -n``; as the baseline measured
in the same run it plans the toy default. Prints the seconds of both, the job
counts, and ``full_dag_seconds=X jobs=N seconds_per_1000_jobs=Y``; then the
seconds of the same plan for a cluster, with job groups as profiles/slurm has them.

    python benchmarks/dag_speed.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from circuitsweep.checkpoints.revisions import OLMO_0724_TOKENS_PER_STEP, floor_billions_name

REPO = Path(__file__).resolve().parents[1]
OLMO_BRANCHES = 1446
#: What a cluster profile adds that changes planning: --jobs (Snakemake then plans the job groups, and checks
#: each by walking every job upstream of it) and profiles/slurm's 12 revisions per group.
CLUSTER = ("--jobs", "100", "--config", "revisions_per_job=12", "snapshots_on_disk=24")


def olmo_stand_in(path: Path) -> None:
    """A complete-looking OLMo-0724 manifest: step0 .. step1445000 every 1000 steps."""
    revisions = []
    for step in range(0, OLMO_BRANCHES * 1000, 1000):
        name = floor_billions_name(step, OLMO_0724_TOKENS_PER_STEP)
        tokens = step * OLMO_0724_TOKENS_PER_STEP // 10**9 * 10**9
        revisions.append({"name": name, "step": step, "tokens": tokens})
    manifest = {
        "format": "circuitsweep.revisions/1",
        "repo_id": "allenai/OLMo-1B-0724-hf",
        "tokens_per_step": OLMO_0724_TOKENS_PER_STEP,
        "partial": False,
        "source": "benchmarks/dag_speed.py stand-in",
        "note": "",
        "count": len(revisions),
        "revisions": revisions,
    }
    path.write_text(json.dumps(manifest))


def plan(workdir: Path, config: Path, *options: str) -> tuple[float, int]:
    """Seconds of ``snakemake -n`` (with ``options``) and the number of jobs it plans."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow/Snakefile"), "-d", str(workdir),
               "--configfile", str(config), "-n", *options]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    total = re.search(r"^total\s+(\d+)$", result.stdout, re.M)
    return seconds, int(total.group(1)) if total else 0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        olmo_stand_in(tmp_path / "olmo.json")
        config = yaml.safe_load((REPO / "config" / "full.yaml").read_text())
        config["models"]["olmo-1b-0724"]["source"]["manifest"] = str(tmp_path / "olmo.json")
        full = tmp_path / "full.yaml"
        full.write_text(yaml.safe_dump(config))
        toy_seconds, toy_jobs = plan(tmp_path / "toy", REPO / "config" / "config.yaml")
        full_seconds, full_jobs = plan(tmp_path / "full", full)
        cluster_seconds, cluster_jobs = plan(tmp_path / "cluster", full, *CLUSTER)
    print(f"toy default: {toy_jobs} jobs planned in {toy_seconds:.1f} s (baseline)")
    ratio = full_seconds / toy_seconds
    print(f"all branches: {full_jobs} jobs planned in {full_seconds:.1f} s ({ratio:.1f}x baseline)")
    per_1000 = 1000 * full_seconds / full_jobs
    print(f"full_dag_seconds={full_seconds:.1f} jobs={full_jobs} seconds_per_1000_jobs={per_1000:.2f}")
    ratio = cluster_seconds / toy_seconds
    print(
        f"all branches for a cluster ({' '.join(CLUSTER)}): {cluster_jobs} jobs in job groups, planned in "
        f"{cluster_seconds:.1f} s ({ratio:.1f}x baseline)"
    )


if __name__ == "__main__":
    main()
