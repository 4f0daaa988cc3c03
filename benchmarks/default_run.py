"""How long the default toy run takes from a clean copy, and where its time goes (issue: at most 360 s on 2 cores).

Copies the files git tracks into a fresh folder, runs ``snakemake --cores all``
there as a new user would, and prints the wall seconds against the budget,
then the job seconds per rule read from Snakemake's log (whole seconds: its
timestamps have no finer resolution) and each toy's training CPU seconds from
its log. Job seconds over wall seconds is how many cores the run kept busy.

    python benchmarks/default_run.py            # about 6 minutes on 2 cores
    python benchmarks/default_run.py --keep     # keep the copy (its results/toy/) and say where
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 360.0
_STAMP = re.compile(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]")
_TRAINED = re.compile(r"^(\S+): (\d+) steps in ([\d.]+) CPU s", re.M)


def copy_tracked(destination: Path) -> None:
    """The files git tracks (a clean clone's tree, uncommitted edits included) copied under ``destination``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60)
    for name in listed.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)


def job_seconds(log: Path) -> dict[str, tuple[int, float]]:
    """Rule -> (jobs, seconds from each job's start line to its "Finished jobid" line) in a Snakemake log."""
    started: dict[str, tuple[str, datetime.datetime]] = {}
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    stamp = rule = None
    for line in log.read_text().splitlines():
        if found := _STAMP.match(line):
            stamp = datetime.datetime.strptime(found.group(1), "%a %b %d %H:%M:%S %Y")
        elif found := re.match(r"(?:local)?rule (\w+):", line):
            rule = found.group(1)
        elif (found := re.match(r"\s+jobid: (\d+)", line)) and rule and stamp:
            started[found.group(1)] = (rule, stamp)
            rule = None
        elif (found := re.match(r"Finished jobid: (\d+)", line)) and found.group(1) in started and stamp:
            name, began = started.pop(found.group(1))
            totals[name][0] += 1
            totals[name][1] += (stamp - began).total_seconds()
    return {name: (int(n), seconds) for name, (n, seconds) in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the copy and its results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="circuitsweep-default-run-"))
    try:
        copy_tracked(work)
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "all"], cwd=work, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            print(f"default run failed (exit {run.returncode}) in {work}", file=sys.stderr)
            args.keep = True
            return 1
        (log,) = (work / ".snakemake" / "log").glob("*.snakemake.log")
        jobs = job_seconds(log)
        total = sum(seconds for _, seconds in jobs.values())
        print(f"default run: {wall:.0f} s wall, budget {BUDGET_S:.0f} s (ratio {wall / BUDGET_S:.2f})")
        print(f"job seconds: {total:.0f} ({total / wall:.2f} cores busy on average)")
        for name, (count, seconds) in sorted(jobs.items(), key=lambda item: -item[1][1]):
            print(f"  {name:<24} {count:>4} jobs {seconds:>7.0f} s")
        for train_log in sorted((work / "results" / "toy" / "logs" / "train_toy_model").glob("*.log")):
            for repo, steps, cpu in _TRAINED.findall(train_log.read_text()):
                print(f"training {repo}: {steps} steps in {float(cpu):.0f} CPU s")
        return 0
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
