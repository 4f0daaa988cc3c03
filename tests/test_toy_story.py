"""benchmarks/toy_story.py, the tool that tries a toy recipe: its milestones, its training, its command line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

from circuitsweep.toy import ToySpec, load_published, train_and_publish
from circuitsweep.toy.train import training_checkpoints

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "toy_story.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("toy_story", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(step: int, bos: list[int], induction: list[int], n_heads: int = 8) -> dict:
    return {"step": step, "bos": bos, "induction": induction, "bos_fraction": sum(bos) / n_heads}


def test_milestones_read_the_rows_as_the_sweep_does():
    """Onset = first checkpoint with >= onset_heads induction-selective heads; first BOS head = first with any
    class-first head; t50 = first with BOS fraction >= 0.5; the ratio t50 / onset (None when either is missing)."""
    milestones = _load_script().milestones
    rows = [
        _row(0, [0, 0], [0, 0]),
        _row(100, [0, 1], [0, 0]),
        _row(200, [0, 0], [0, 1]),
        _row(300, [0, 1], [0, 3]),
        _row(900, [0, 4], [0, 3]),
        _row(1200, [0, 4], [0, 2]),
    ]
    assert milestones(rows, onset_heads=2) == {
        "induction_onset": 300, "first_bos_head": 100, "bos_t50": 900, "t50_over_onset": 3.0,
    }  # fmt: skip
    assert milestones(rows[:4], onset_heads=2)["bos_t50"] is None
    assert milestones(rows[:4], onset_heads=2)["t50_over_onset"] is None
    assert milestones(rows, onset_heads=5)["induction_onset"] is None


def test_training_checkpoints_are_the_published_ones(tmp_path):
    """The script classifies the very models the workflow publishes: the training generator's last checkpoint has
    the weights of the published `main` (one training loop for both)."""
    spec = ToySpec(architecture="OlmoForCausalLM", hidden_size=32, num_heads=4, intermediate_size=32,
                   batch=4, seq_len=16, schedule=(0, 2, 4))  # fmt: skip
    train_and_publish(spec, tmp_path, "toy/m", "step{step}", progress=False)
    published = load_published(tmp_path, "toy/m", "main").state_dict()
    steps = []
    for step, model, _ in training_checkpoints(spec):
        steps.append(step)
        last = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert steps == [0, 2, 4]
    assert published.keys() == last.keys()
    assert all(torch.equal(published[name], last[name]) for name in last)


def test_command_prints_a_line_per_checkpoint_and_the_milestones(capsys):
    """A short run of the default config's toy-olmo prints one JSON line per checkpoint (BOS, induction and
    screen heads per layer) and a last line with the CPU seconds and the milestones; a bad --toy, --model or --config
    is one line naming it, exit 2, before any training."""
    toy = json.dumps({"schedule": [0, 3, 6], "batch": 4})
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", "toy-olmo", "--toy", toy],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [line["step"] for line in lines[:-1]] == [0, 3, 6]
    for line in lines[:-1]:
        assert len(line["bos"]) == len(line["previous"]) == len(line["induction"]) == len(line["screen"]) == 2
        assert 0 <= line["bos_fraction"] <= 1
    assert set(lines[-1]) == {"cpu_s", "induction_onset", "first_bos_head", "bos_t50", "t50_over_onset"}
    main = _load_script().main
    for args, named in [
        (["--model", "toy-olmo", "--toy", "[1]"], "--toy"),
        (["--model", "toy-olmo", "--toy", '{"num_heads": 7}'], "num_heads 7"),
        (["--model", "toy-olmo", "--toy", '{"bogus": 1}'], "bogus"),
        (["--model", "toy-olmo", "--toy", '{"batch": -1}'], "batch"),
        (["--model", "toy-olmo", "--toy", '{"chain_spans": "a"}'], "chain_spans"),
        (["--model", "nosuch"], "toy-gptneox, toy-olmo, toy-olmoe"),
        (["--model", "toy-olmo", "--config", "/nonexistent.yaml"], "/nonexistent.yaml"),
    ]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0 and named in err, (args, err)
