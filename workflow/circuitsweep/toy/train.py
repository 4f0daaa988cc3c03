"""Train a tiny model on synthetic copy data and publish its checkpoints as revisions.

One model per architecture class (GPT-NeoX, OLMo, OLMoE), random init from a
small config, trained on the CPU on :func:`circuitsweep.toy.data.synthetic_batch`
so that induction heads form at a phase change partway through training.
Checkpoints at the steps of ``spec.schedule`` (step 0 = the initialisation)
are saved with ``save_pretrained`` and published with
:func:`circuitsweep.checkpoints.local_hub.publish_revision`, the last one also as ``main``.
Same spec (seed included) -> bit-identical checkpoints.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import (
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    OlmoConfig,
    OlmoeConfig,
    OlmoeForCausalLM,
    OlmoForCausalLM,
    PreTrainedModel,
)
from transformers.utils import logging as hf_logging

from circuitsweep.checkpoints import local_hub
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.toy.data import synthetic_batch
from circuitsweep.toy.spec import ToySpec, branch_name


def build_config(spec: ToySpec) -> GPTNeoXConfig | OlmoConfig | OlmoeConfig:
    """The transformers config of ``spec``'s model (eos/pad = 0, bos = first_token_id)."""
    common: dict[str, Any] = dict(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.seq_len,
        bos_token_id=spec.first_token_id,
        eos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": 10000.0}
    if spec.architecture == "GPTNeoXForCausalLM":
        config: Any = GPTNeoXConfig(
            **common,
            rope_parameters={**rope, "partial_rotary_factor": spec.rotary_fraction},
            use_parallel_residual=True,
        )
    elif spec.architecture == "OlmoForCausalLM":
        config = OlmoConfig(**common, rope_parameters=rope)
    else:
        config = OlmoeConfig(
            **common,
            rope_parameters=rope,
            num_experts=spec.num_experts,
            num_experts_per_tok=spec.experts_per_token,
        )
    return config


def build_model(spec: ToySpec) -> PreTrainedModel:
    """A randomly initialised model of ``spec`` (seeded by ``spec.seed``), SDPA attention, fp32."""
    classes = {
        "GPTNeoXForCausalLM": GPTNeoXForCausalLM,
        "OlmoForCausalLM": OlmoForCausalLM,
        "OlmoeForCausalLM": OlmoeForCausalLM,
    }
    torch.manual_seed(spec.seed)
    config = build_config(spec)
    config._attn_implementation = "sdpa"
    model = classes[spec.architecture](config)
    return model.float()


def save_quietly(model: PreTrainedModel, folder: Path) -> None:
    """``model.save_pretrained(folder)`` (safetensors) without transformers' "Writing model shards" progress bar,
    which would print once per checkpoint."""
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _save_checkpoint(model: PreTrainedModel, spec: ToySpec, step: int, folder: Path) -> dict[str, Path]:
    """Write ``save_pretrained`` files plus ``revision.json`` into ``folder``; name -> path."""
    save_quietly(model, folder)
    info = {
        "step": step,
        "tokens": step * spec.tokens_per_step,
        "tokens_per_step": spec.tokens_per_step,
        "seed": spec.seed,
    }
    atomic_write_text(folder / "revision.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


def train_and_publish(
    spec: ToySpec,
    hub_root: Path,
    repo_id: str,
    branch_format: str,
    threads: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train ``spec``'s model and publish a revision at every step of ``spec.schedule``.

    Step 0 is the initialisation; step s is the model after s AdamW updates on
    batches ``[spec.batch, spec.seq_len]`` of :func:`synthetic_batch`. Each
    branch is ``branch_format`` formatted with step/tokens/ktokens; the last
    checkpoint is published again as ``main``. Returns one dict per published
    revision (``main`` last): branch, step, tokens, commit.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(spec, Path(hub_root), repo_id, branch_format, progress)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def toy_optimizer(model: PreTrainedModel, spec: ToySpec) -> torch.optim.AdamW:
    """AdamW with ``spec``'s learning rate and weight decay over every parameter of ``model``."""
    return torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


def warm_up(optimizer: torch.optim.Optimizer, spec: ToySpec, step: int) -> None:
    """Set the learning rate of optimizer step ``step`` (0-based): linear from ``spec.lr / warmup_steps`` to
    ``spec.lr`` over ``spec.warmup_steps`` steps, then constant (no warmup: left at ``spec.lr``)."""
    if spec.warmup_steps:
        for group in optimizer.param_groups:
            group["lr"] = spec.lr * min(1.0, (step + 1) / spec.warmup_steps)


def training_checkpoints(
    spec: ToySpec, progress_label: str | None = None, model: PreTrainedModel | None = None
) -> Iterator[tuple[int, PreTrainedModel, float]]:
    """Train ``spec``'s model and yield ``(step, model, cpu_seconds)`` at every step of ``spec.schedule``.

    Step 0 is the initialisation; step s is the model after s AdamW updates on
    batches ``[spec.batch, spec.seq_len]`` of :func:`synthetic_batch`. The model
    is yielded in train mode and must not be changed by the caller (switch it to
    eval and back is fine); cpu_seconds counts the optimizer steps so far.
    With ``progress_label`` a line per tenth of the steps shows the loss.
    ``model``: ``build_model(spec)`` changed by an experiment (default: ``build_model(spec)``).
    """
    from circuitsweep.io.progress import LineProgress

    model = build_model(spec) if model is None else model
    model.train()
    optimizer = toy_optimizer(model, spec)
    generator = torch.Generator().manual_seed(spec.seed)
    last_step = spec.schedule[-1]
    cpu_seconds = 0.0
    label = progress_label or "train"
    with LineProgress(last_step, label, unit="steps", enabled=progress_label is not None, steps=10) as bar:
        for step in range(last_step + 1):
            if step in spec.schedule:
                yield step, model, cpu_seconds
                model.train()
            if step == last_step:
                break
            start = time.process_time()
            warm_up(optimizer, spec, step)
            tokens_batch = synthetic_batch(spec, generator)
            loss = model(input_ids=tokens_batch, labels=tokens_batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            cpu_seconds += time.process_time() - start
            bar.update(1)
            if step % 25 == 0:
                bar.note(loss=f"{loss.item():.3f}", cpu_s=f"{cpu_seconds:.0f}")


def _train(spec: ToySpec, hub_root: Path, repo_id: str, branch_format: str, progress: bool) -> list[dict[str, Any]]:
    published: list[dict[str, Any]] = []
    last_step = spec.schedule[-1]
    cpu_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="toy-ckpt-") as tmp:
        for step, model, cpu_so_far in training_checkpoints(spec, f"train {repo_id}" if progress else None):
            cpu_seconds = cpu_so_far
            files = _save_checkpoint(model, spec, step, Path(tmp) / f"step{step}")
            branches = [branch_name(branch_format, step, spec.tokens_per_step)]
            if step == last_step:
                branches.append("main")
            for branch in branches:
                commit = local_hub.publish_revision(hub_root, repo_id, branch, files)
                tokens = step * spec.tokens_per_step
                published.append({"branch": branch, "step": step, "tokens": tokens, "commit": commit})
    if progress:
        checkpoints = len(published) - 1  # the last checkpoint is published twice, as its branch and as main
        print(f"{repo_id}: {last_step} steps in {cpu_seconds:.1f} CPU s, {checkpoints} checkpoints published, and main")
    return published


def load_published(hub_root: Path, repo_id: str, branch: str) -> PreTrainedModel:
    """Resolve ``branch`` with ``snapshot_download(local_files_only=True)`` and load it, as the sweep will."""
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM

    path = snapshot_download(repo_id, revision=branch, cache_dir=hub_root, local_files_only=True)
    return AutoModelForCausalLM.from_pretrained(path)
