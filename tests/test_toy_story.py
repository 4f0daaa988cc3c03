"""benchmarks/toy_story.py, the tool that tries a toy recipe: its milestones, its training, its command line."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import torch
from bench_scripts import load_script, script_path

from circuitsweep.config.load import study_defaults
from circuitsweep.config.thresholds import MilestoneThresholds
from circuitsweep.toy import ToySpec, load_published, train_and_publish
from circuitsweep.toy.train import build_model, training_checkpoints

SCRIPT = script_path("toy_story")


def _checkpoint(step: int, bos: list[int], induction: list[int], heads_per_layer: int = 4) -> pl.DataFrame:
    """Classified heads of one planted checkpoint: per layer ``bos[l]`` class-first heads, then ``induction[l]``
    induction heads (selective and in the screen), the rest of class none."""
    rows = []
    for layer, (n_bos, n_induction) in enumerate(zip(bos, induction, strict=True)):
        for head in range(heads_per_layer):
            is_induction = n_bos <= head < n_bos + n_induction
            rows.append({
                "layer": layer, "head": head,
                "class": "first" if head < n_bos else "induction" if is_induction else "none",
                "induction_selective": is_induction, "induction_member": is_induction, "in_circuit": is_induction,
                "sink": False,
            })  # fmt: skip
    return pl.DataFrame(rows).with_columns(
        model=pl.lit("toy"), revision=pl.lit(f"step{step}"), step=pl.lit(step), tokens=pl.lit(step * 1000)
    )


def test_milestones_are_the_sweeps_own():
    """The script reads its checkpoints with the sweep's milestone code: onset = first checkpoint with >=
    induction_onset_heads induction-selective heads; first BOS head = first with any class-first head; t50 = first
    with BOS fraction >= 0.5; the ratio t50 / onset (None when either is missing); all as steps."""
    milestones = load_script("toy_story").milestones
    checkpoints = [
        _checkpoint(0, [0, 0], [0, 0]),
        _checkpoint(100, [0, 1], [0, 0]),
        _checkpoint(200, [0, 0], [0, 1]),
        _checkpoint(300, [0, 1], [0, 3]),
        _checkpoint(900, [0, 4], [0, 0]),
        _checkpoint(1200, [0, 4], [0, 0]),
    ]
    heads = pl.concat(checkpoints)
    two = MilestoneThresholds.from_dict({**study_defaults("thresholds"), "induction_onset_heads": 2})
    assert milestones(heads, two) == {
        "induction_onset": 300, "first_bos_head": 100, "bos_t50": 900, "t50_over_onset": 3.0,
    }  # fmt: skip
    assert milestones(pl.concat(checkpoints[:4]), two)["bos_t50"] is None
    assert milestones(pl.concat(checkpoints[:4]), two)["t50_over_onset"] is None
    five = MilestoneThresholds.from_dict({**study_defaults("thresholds"), "induction_onset_heads": 5})
    assert milestones(heads, five)["induction_onset"] is None


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
    main = load_script("toy_story").main
    for args, named in [
        (["--model", "toy-olmo", "--toy", "[1]"], "--toy"),
        (["--model", "toy-olmo", "--toy", '{"num_heads": 7}'], "num_heads 7"),
        (["--model", "toy-olmo", "--toy", '{"bogus": 1}'], "bogus"),
        (["--model", "toy-olmo", "--toy", '{"batch": -1}'], "batch"),
        (["--model", "toy-olmo", "--toy", '{"chain_spans": "a"}'], "chain_spans"),
        (["--model", "toy-olmo", "--toy", '{"vocab_size": 20}'], "probes.token_range: [2, 28) reaches past"),
        (["--model", "nosuch"], "toy-gptneox, toy-olmo, toy-olmoe"),
        (["--model", "toy-olmo", "--config", "/nonexistent.yaml"], "/nonexistent.yaml"),
        (["--model", "toy-olmo", "--without-qk-norm"], "OlmoForCausalLM has no q/k norm"),
    ]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0 and named in err, (args, err)


def test_qk_norm_experiments_change_only_the_olmoe_norms():
    """--without-qk-norm replaces each OLMoE layer's q/k RMSNorm by the identity, --qk-norm-gain G starts their
    gains at G; every other weight is the spec's initialisation, and the model still runs."""
    change_qk_norm = load_script("toy_story").change_qk_norm
    spec = ToySpec.default("OlmoeForCausalLM", vocab_size=28, num_heads=8, intermediate_size=32, schedule=(0,))
    reference = build_model(spec).state_dict()
    for gain, identity in [(2.0, False), (None, True)]:
        model = build_model(spec)
        change_qk_norm(model, gain, identity)
        changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, reference[name])}
        norms = {name for name in reference if ".q_norm." in name or ".k_norm." in name}
        if identity:
            assert norms.isdisjoint(model.state_dict()) and not changed
            assert all(isinstance(layer.self_attn.q_norm, torch.nn.Identity) for layer in model.model.layers)
        else:
            assert changed == norms and all(bool((model.state_dict()[name] == 2.0).all()) for name in norms)
        with torch.no_grad():
            assert torch.isfinite(model(input_ids=torch.ones(1, 8, dtype=torch.long)).logits).all()
