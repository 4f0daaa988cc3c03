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

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
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

from circuitsweep.architectures import TOY_ARCHITECTURES
from circuitsweep.checkpoints import local_hub
from circuitsweep.toy.data import synthetic_batch

ARCHITECTURES = TOY_ARCHITECTURES

#: Per-architecture overrides of the ToySpec defaults, tuned so that induction
#: heads form mid-schedule within about 100-120 CPU seconds on one thread.
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "GPTNeoXForCausalLM": {},
    "OlmoForCausalLM": {},
    # OLMoE RMS-normalises q and k over all heads together, which caps how sharp
    # a 16-dim head can attend; 4 heads of 32 dims form induction heads twice as early.
    "OlmoeForCausalLM": {
        "num_heads": 4,
        "intermediate_size": 64,
        "schedule": (0, 25, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500),
    },
}

#: Keys of a ``toy:`` config entry that the caller uses and ToySpec ignores.
CALLER_KEYS = frozenset({"branch_format"})


@dataclass(frozen=True)
class ToySpec:
    """Everything that determines a toy model's checkpoints.

    schedule: steps at which a checkpoint is published, ascending, starting at 0.
    n_spans, span_min, span_max, copy_fraction: the copied spans of the data.
    rotary_fraction: share of each head's dims that get rotary (GPT-NeoX only).
    num_experts, experts_per_token: the MoE layers (OLMoE only).
    """

    architecture: str
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 8
    intermediate_size: int = 128
    vocab_size: int = 64
    seq_len: int = 64
    batch: int = 64
    lr: float = 2e-3
    warmup_steps: int = 50
    schedule: tuple[int, ...] = (0, 25, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600)
    seed: int = 0
    first_token_id: int = 1
    n_spans: int = 5
    span_min: int = 6
    span_max: int = 16
    copy_fraction: float = 0.9
    rotary_fraction: float = 1.0
    num_experts: int = 4
    experts_per_token: int = 2

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"toy architecture {self.architecture!r} is not one of {ARCHITECTURES}")
        steps = tuple(int(s) for s in self.schedule)
        if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"toy schedule must start at 0 and increase strictly, got {self.schedule}")
        object.__setattr__(self, "schedule", steps)
        if not 0 <= self.first_token_id < self.vocab_size:
            raise ValueError(f"first_token_id {self.first_token_id} is outside the vocabulary")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step: batch x seq_len."""
        return self.batch * self.seq_len

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToySpec:
        """Build from a config mapping (the model's ``toy:`` entry plus ``architecture``).

        Missing keys take the architecture's tuned defaults; unknown keys are an error.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names - CALLER_KEYS
        if unknown:
            raise ValueError(f"unknown toy keys {sorted(unknown)}; known: {sorted(names)}")
        values = {k: v for k, v in d.items() if k in names}
        if "schedule" in values:
            values["schedule"] = tuple(values["schedule"])
        if "architecture" not in values:
            raise ValueError("toy settings need an architecture")
        return cls.default(values.pop("architecture"), **values)

    @classmethod
    def default(cls, architecture: str, **overrides: Any) -> ToySpec:
        """The tuned default spec of ``architecture`` (see ``ARCHITECTURE_DEFAULTS``), with ``overrides``."""
        if architecture not in ARCHITECTURE_DEFAULTS:
            raise ValueError(f"toy architecture {architecture!r} is not one of {ARCHITECTURES}")
        return cls(architecture=architecture, **{**ARCHITECTURE_DEFAULTS[architecture], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; ``ToySpec.from_dict(spec.to_dict()) == spec``."""
        d = dataclasses.asdict(self)
        d["schedule"] = list(self.schedule)
        return d


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


def branch_name(branch_format: str, step: int, tokens_per_step: int) -> str:
    """Format a branch name; fields ``step``, ``tokens`` and ``ktokens`` (= round(tokens / 1000))."""
    tokens = step * tokens_per_step
    return branch_format.format(step=step, tokens=tokens, ktokens=round(tokens / 1000))


def _save_checkpoint(model: PreTrainedModel, spec: ToySpec, step: int, folder: Path) -> dict[str, Path]:
    """Write ``save_pretrained`` files plus ``revision.json`` into ``folder``; name -> path."""
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per checkpoint is noise
    try:
        model.save_pretrained(folder)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    info = {
        "step": step,
        "tokens": step * spec.tokens_per_step,
        "tokens_per_step": spec.tokens_per_step,
        "seed": spec.seed,
    }
    (folder / "revision.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
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


def _train(spec: ToySpec, hub_root: Path, repo_id: str, branch_format: str, progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    model = build_model(spec)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    generator = torch.Generator().manual_seed(spec.seed)
    published: list[dict[str, Any]] = []
    last_step = spec.schedule[-1]
    cpu_seconds = 0.0
    with (
        tempfile.TemporaryDirectory(prefix="toy-ckpt-") as tmp,
        tqdm(total=last_step, desc=f"train {repo_id}", unit="step", mininterval=2.0, disable=not progress) as bar,
    ):
        for step in range(last_step + 1):
            if step in spec.schedule:
                files = _save_checkpoint(model, spec, step, Path(tmp) / f"step{step}")
                branches = [branch_name(branch_format, step, spec.tokens_per_step)]
                if step == last_step:
                    branches.append("main")
                for branch in branches:
                    commit = local_hub.publish_revision(hub_root, repo_id, branch, files)
                    tokens = step * spec.tokens_per_step
                    published.append({"branch": branch, "step": step, "tokens": tokens, "commit": commit})
            if step == last_step:
                break
            start = time.process_time()
            if spec.warmup_steps:
                for group in optimizer.param_groups:
                    group["lr"] = spec.lr * min(1.0, (step + 1) / spec.warmup_steps)
            tokens_batch = synthetic_batch(spec, generator)
            loss = model(input_ids=tokens_batch, labels=tokens_batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            cpu_seconds += time.process_time() - start
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", cpu_s=f"{cpu_seconds:.0f}")
    if progress:
        print(f"{repo_id}: {last_step} steps in {cpu_seconds:.1f} CPU s, {len(published)} revisions published")
    return published


def load_published(hub_root: Path, repo_id: str, branch: str) -> PreTrainedModel:
    """Resolve ``branch`` with ``snapshot_download(local_files_only=True)`` and load it, as the sweep will."""
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM

    path = snapshot_download(repo_id, revision=branch, cache_dir=hub_root, local_files_only=True)
    return AutoModelForCausalLM.from_pretrained(path)
