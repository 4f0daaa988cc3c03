"""Smoke test of benchmarks/heads_speed.py: it runs, the contenders agree, the last line parses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench_scripts import load_script, script_path

SCRIPT = script_path("heads_speed")
FINAL_LINE = re.compile(r"^speedup_vs_eager=(\d+(?:\.\d+)?) memory_ratio_vs_eager=(\d+(?:\.\d+)?)$")


def test_smoke_run_agrees_with_eager_and_prints_the_final_line():
    """--smoke: realistic model shapes, tiny probes; eager scores equal ours to 1e-4 or the run fails."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--contenders", "ours,eager", "--matmul-seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,  # --smoke takes ~40 s on 2 shared cores
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    match = FINAL_LINE.match(lines[-1])
    assert match, f"last line is {lines[-1]!r}"
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
    eager_rows = [line for line in lines if line.split()[:1] == ["eager"] and "batches" in line]
    assert len(eager_rows) == 2, proc.stdout
    for row in eager_rows:
        assert "scores match ours" in row, row
        worst = float(re.search(r"max rel diff ([0-9.e+-]+)", row).group(1))
        assert worst <= 1e-4, row


def test_disagreeing_contenders_stop_the_benchmark():
    """A contender whose scores differ from ours beyond 1e-4 is an error, not a timing."""
    bench = load_script("heads_speed")
    ours = {"scores": {c: [[0.5, 0.25]] for c in bench.COMPARED}, "loss_halves": (9.0, 8.0)}
    same = {"scores": {c: [[0.5 * (1 + 1e-6), 0.25]] for c in bench.COMPARED}, "loss_halves": (9.0, 8.0)}
    assert bench.compare(ours, same, "eager", "m", 1e-4, 1e-6) < 1e-4
    wrong = {"scores": {**same["scores"], "sink_alpha": [[0.5, 0.2501]]}, "loss_halves": (9.0, 8.0)}
    with pytest.raises(SystemExit):
        bench.compare(ours, wrong, "eager", "m", 1e-4, 1e-6)
    wrong_loss = {"scores": same["scores"], "loss_halves": (9.0, 8.1)}
    with pytest.raises(SystemExit):
        bench.compare(ours, wrong_loss, "eager", "m", 1e-4, 1e-6)


@pytest.mark.parametrize("name", ["pythia-70m", "olmo-1b"])
def test_flop_counts_match_torch_flop_counter(name):
    """The FLOPs behind the printed throughput share and work ratio are those the passes really run.

    torch's FlopCounterMode counts every matmul of our measurement and of the
    eager way on the --smoke probes of a 2-layer model; the benchmark's closed
    forms agree to 1 % (ours leaves out the observers' few probability rows).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from circuitsweep.heads.attention_hook import register
    from circuitsweep.heads.measure import ProbeSettings, head_statistics

    bench = load_script("heads_speed")
    probes = ProbeSettings.from_dict(bench.probe_dict(bench.MODES["smoke"]))
    ours = bench.build_model(name, 2, register())
    with FlopCounterMode(display=False) as counted:
        head_statistics(ours, probes, None, torch.device("cpu"), progress=False)
    assert counted.get_total_flops() == pytest.approx(bench.forward_flops(ours, probes), rel=0.01)
    eager = bench.build_model(name, 2, "eager")
    with FlopCounterMode(display=False) as counted:
        bench.run_eager(eager, probes, torch.device("cpu"))
    assert counted.get_total_flops() == pytest.approx(bench.eager_flops(eager, probes), rel=0.01)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_docs_quote_the_quick_runs_memory_line_and_use_its_figures():
    """docs/benchmarks.md quotes `--quick`'s memory line and final line as the benchmark prints them (the models
    `--quick` runs, under their report labels), and its prose figures are those lines' numbers."""
    bench = load_script("heads_speed")
    text = DOCS.read_text()
    lines = [line.strip() for line in text.splitlines()]
    memory = [m for line in lines if (m := bench.MEMORY_LINE.match(line))]
    final = [m for line in lines if (m := FINAL_LINE.match(line))]
    assert len(memory) == 1 and len(final) == 1, "quote one memory line and one final line of --quick"
    ratios = {m["model"]: float(m["ratio"]) for m in bench.MEMORY_MODEL.finditer(memory[0]["models"])}
    quick = bench.MODES["quick"]
    labels = [bench.run_label("pythia-70m", 6), bench.run_label("olmo-1b", quick["olmo_layers"])]
    assert list(ratios) == labels
    mean = float(memory[0]["mean"])
    assert bench.geomean(list(ratios.values())) == pytest.approx(mean, abs=0.01)
    assert float(final[0].group(2)) == pytest.approx(mean, abs=0.0051)  # printed to 3 and to 2 decimals
    assert f"{mean:.2f}x less peak memory" in " ".join(text.split())
    for label, ratio in ratios.items():
        assert f"{label.split()[0]} {ratio:.2f}x" in " ".join(text.split()), label
    cpu = re.findall(r"^aggregate: .*speedup in process CPU time (\d+\.\d+);", text, re.M)
    assert len(cpu) == 1, "quote the aggregate line of the same run"
    assert f"{float(cpu[0]):.2f}x faster in CPU time" in " ".join(text.split())
