"""What a toy recipe's training shows, checkpoint by checkpoint: the tool behind docs/methods.md ("The toy suite").

Trains one toy model of a config (the default: ``config/config.yaml``) with its
``toy:`` settings, optionally changed by ``--toy JSON``, and classifies every
head at each checkpoint of the schedule with that config's probes and
thresholds, in memory (no hub, no Snakemake). Prints one line per checkpoint:
the step, the loss on a fresh training batch, and per layer the class-first
(BOS) heads, the class-previous heads, the induction-selective heads (any
class) and the screen heads (induction selectivity >=
``thresholds.induction_circuit``, any class), then the
whole-model BOS fraction; at the end the CPU seconds of training (one thread,
deterministic, as the workflow trains) and the milestones the sweep would read
from these checkpoints (induction onset, first BOS head, BOS t50 and its ratio).

    python benchmarks/toy_story.py --model toy-gptneox
    python benchmarks/toy_story.py --model toy-gptneox --toy '{"num_layers": 4, "batch": 32, "lr": 0.004,
        "chain_spans": 2, "first_in_content": true, "schedule": [0, 100, 200, 300, 400, 600]}'

``--without-qk-norm`` and ``--qk-norm-gain G`` change the OLMoE toy's q/k RMSNorm (over all heads) before
training, to measure what that norm does to the sinks (docs/toy-recipes.md); such checkpoints are never
published.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import polars as pl
import torch
from transformers import PreTrainedModel

import circuitsweep as cs
from circuitsweep.config.load import ModelSettings, load_config, resolve_model, validate_schema
from circuitsweep.config.thresholds import MilestoneThresholds
from circuitsweep.errors import ConfigError
from circuitsweep.milestones.emergence import emergence_curves
from circuitsweep.milestones.emergence import milestones as emergence_milestones
from circuitsweep.plan.checks import toy_vocabulary_problems
from circuitsweep.toy.data import synthetic_batch
from circuitsweep.toy.spec import ToySpec
from circuitsweep.toy.train import build_model, training_checkpoints

REPO = Path(__file__).resolve().parents[1]
#: The model name the checkpoints go by in the tables the milestones are read from.
MODEL = "toy"


def layer_counts(heads: pl.DataFrame, n_layers: int, condition: pl.Expr) -> list[int]:
    """Heads meeting ``condition`` in each layer, ``[n_layers]``."""
    chosen = heads.filter(condition)["layer"].to_list()
    return [chosen.count(layer) for layer in range(n_layers)]


def toy_spec(config: dict, model_name: str, overrides: dict) -> ToySpec:
    """The spec of ``model_name``'s toy in ``config``, its ``toy:`` keys replaced by ``overrides``.

    The changed config is checked against the workflow's schema first, so a value the workflow
    would refuse (a negative batch, a chain count that is not a number) is refused here too.
    """
    entry = config["models"][model_name]
    toy = {**entry.get("toy", {}), **overrides}
    checked = copy.deepcopy(config)
    checked["models"][model_name] = {**entry, "toy": toy}
    validate_schema(checked)
    return ToySpec.from_dict({**toy, "architecture": entry["architecture"]})


def change_qk_norm(model: PreTrainedModel, gain: float | None, identity: bool) -> None:
    """Change the RMSNorm that OLMoE-style attention applies to q and k over all heads, in place.

    ``identity``: replace both norms by the identity, so attention logits are as unbounded as OLMo's (an
    experiment only: transformers cannot load such a model back); ``gain``: start both norms' gains at
    ``gain`` instead of 1 (logits scaled by ``gain**2`` at initialisation). Raises ValueError for a model
    whose attention has no q/k norm.
    """
    layers = model.model.layers
    if not all(hasattr(layer.self_attn, "q_norm") for layer in layers):
        raise ValueError(f"{type(model).__name__} has no q/k norm in its attention")
    for layer in layers:
        attention = layer.self_attn
        if identity:
            attention.q_norm, attention.k_norm = torch.nn.Identity(), torch.nn.Identity()
        elif gain is not None:
            with torch.no_grad():
                attention.q_norm.weight.fill_(gain)
                attention.k_norm.weight.fill_(gain)


def story(
    settings: ModelSettings, spec: ToySpec, initial: PreTrainedModel | None = None
) -> tuple[list[dict], pl.DataFrame]:
    """Train and classify with the model's probes and thresholds (the config's, merged with the model's own):
    a dict per checkpoint (step, loss, bos, previous, induction, screen, bos_fraction, cpu_s), printed as it
    comes, and every checkpoint's classified heads (with model, revision, step, tokens). ``initial``: the
    spec's initial model changed by an experiment (default: the spec's own)."""
    probes, thresholds = settings.probes, settings.thresholds
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rows, frames = [], []
    for step, model, cpu_s in training_checkpoints(spec, model=initial):
        model.eval()
        heads = cs.measure_heads(model, probes, first_token=spec.first_token_id, thresholds=thresholds)
        with torch.inference_mode():
            batch = synthetic_batch(spec, torch.Generator().manual_seed(10_000 + step))
            loss = float(model(input_ids=batch, labels=batch).loss)
        bos = layer_counts(heads, spec.num_layers, pl.col("class") == "first")
        rows.append(
            {
                "step": step,
                "loss": round(loss, 3),
                "bos": bos,
                "previous": layer_counts(heads, spec.num_layers, pl.col("class") == "previous"),
                "induction": layer_counts(heads, spec.num_layers, pl.col("induction_selective")),
                "screen": layer_counts(heads, spec.num_layers, pl.col("induction_member")),
                "bos_fraction": round(sum(bos) / heads.height, 3),
                "cpu_s": round(cpu_s, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        frames.append(heads.with_columns(
            model=pl.lit(MODEL), revision=pl.lit(f"step{step}"), step=pl.lit(step),
            tokens=pl.lit(step * spec.tokens_per_step),
        ))  # fmt: skip
    return rows, pl.concat(frames)


def milestones(heads: pl.DataFrame, thresholds: MilestoneThresholds) -> dict:
    """The sweep's own milestones of these checkpoints (``milestones.emergence``: induction onset, first BOS head,
    BOS t50 and its ratio to the onset), as steps. ``heads``: every checkpoint's classified heads of one model."""
    revisions = (
        heads.group_by("model", "revision", "step", "tokens")
        .agg(n_layers=pl.col("layer").max() + 1)
        .with_columns(in_context_loss_drop=pl.lit(None, dtype=pl.Float64))
    )
    row = emergence_milestones(emergence_curves(heads, revisions), heads, {MODEL: thresholds}).row(0, named=True)
    step_of = dict(zip(revisions["revision"], revisions["step"], strict=True))
    ratio = row["bos_to_induction_ratio"]
    return {
        "induction_onset": step_of.get(row["induction_onset_revision"]),
        "first_bos_head": step_of.get(row["first_bos_head_revision"]),
        "bos_t50": step_of.get(row["bos_t50_revision"]),
        "t50_over_onset": None if ratio is None else round(ratio, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--model", required=True, help="a toy model of the config, e.g. toy-gptneox")
    parser.add_argument("--toy", default="{}", help="JSON object of toy keys that replace the config's")
    qk_norm = parser.add_mutually_exclusive_group()
    qk_norm.add_argument(
        "--without-qk-norm", action="store_true", help="OLMoE: train without the q/k RMSNorm (an experiment)"
    )
    qk_norm.add_argument("--qk-norm-gain", type=float, help="OLMoE: start the q/k RMSNorm gains at this value")
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.toy)
    except json.JSONDecodeError as error:
        print(f"--toy: not JSON ({error})", file=sys.stderr)
        return 2
    if not isinstance(overrides, dict):
        print("--toy: give a JSON object of toy keys", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except (OSError, ConfigError) as error:
        print(f"--config {args.config}: {error}", file=sys.stderr)
        return 2
    entry = config.get("models", {}).get(args.model)
    if not isinstance(entry, dict) or "toy" not in entry:
        toys = sorted(name for name, model in config.get("models", {}).items() if "toy" in model)
        print(f"--model {args.model!r}: not a toy model of {args.config} (toys: {', '.join(toys)})", file=sys.stderr)
        return 2
    try:
        spec = toy_spec(config, args.model, overrides)
    except (ValueError, TypeError) as error:
        problems = [line.strip(" -") for line in str(error).splitlines()]
        print(f"--toy: {'; '.join(problems[1:] if len(problems) > 1 else problems)}", file=sys.stderr)
        return 2
    settings = resolve_model(args.model, entry, config)
    problems = toy_vocabulary_problems(f"models.{args.model}", settings.probes.token_range, settings.first_token, spec)
    if problems:
        print(f"--config {args.config} with --toy: {'; '.join(problems)}", file=sys.stderr)
        return 2
    model = None
    if args.without_qk_norm or args.qk_norm_gain is not None:
        model = build_model(spec)
        try:
            change_qk_norm(model, args.qk_norm_gain, args.without_qk_norm)
        except ValueError as error:
            print(f"--model {args.model}: {error}", file=sys.stderr)
            return 2
    rows, heads = story(settings, spec, model)
    print(json.dumps({"cpu_s": rows[-1]["cpu_s"], **milestones(heads, settings.milestones)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
