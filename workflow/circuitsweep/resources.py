"""Job sizes (memory, runtime, GPUs) for every rule, estimated from the plan; no torch.

The rules declare these as their ``resources:``, so a profile or a command line
(``--set-resources rule:key=value``) overrides one key and keeps the others. Memory
and runtime grow with Snakemake's ``attempt`` (1 on the first try), so a job that
SLURM killed for OUT_OF_MEMORY or TIMEOUT is resubmitted larger.

The estimate needs only the model's parameter count (config key
``models.<name>.parameters``; toy models: from their training settings) and dtype:

    host memory  = base + parameters x (4 + dtype bytes) x margin
                   (the checkpoint may be stored in fp32 and is cast to ``dtype``
                   on load: both copies can be resident at once)
    runtime      = start-up + read time of the fp32 weights + forward FLOPs of the
                   probe tokens at a conservative throughput, times a margin
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# bytes per parameter of each configured dtype
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# parameters assumed when a Hub/local model does not say (the study's largest, OLMoE 1B-7B)
DEFAULT_PARAMETERS = 7_000_000_000
BASE_MEM_MB = 2048  # interpreter, torch, CUDA context, probes, tokenizer
MEM_MARGIN = 1.25
START_UP_S = 120  # python start, imports, CUDA initialisation
READ_MB_PER_S = 200  # weights read from a shared filesystem
GPU_FLOPS = 2e13  # sustained; a tenth of a datacentre GPU's 16-bit peak
CPU_FLOPS = 2e10  # a few cores
RUNTIME_MARGIN = 2.0
MIN_RUNTIME_MIN = 10

# Rules that read only caches or tables: fixed sizes (MB, minutes) at attempt 1.
SMALL_JOBS: dict[str, tuple[int, int]] = {
    "classify_heads": (4000, 30),
    "head_tables": (4000, 30),
    "sweep_overhead": (2000, 15),
    "plot_emergence": (2000, 15),
    "plot_heatmap": (2000, 15),
    "plot_trajectories": (2000, 15),
    "score_primitives": (4000, 30),
    "primitive_tables": (4000, 30),
    "plot_primitive_gap": (2000, 15),
    "revision_block": (1000, 5),
    "fetch_snapshot": (4000, 120),
    "train_toy_model": (8000, 120),
    "natural_batch": (8000, 60),
}


@dataclass(frozen=True)
class JobSize:
    """One job's request: ``mem_mb`` (MB of host memory), ``runtime`` (minutes), ``gpu`` (count)."""

    mem_mb: int
    runtime: int
    gpu: int

    def scaled(self, attempt: int) -> JobSize:
        """Memory and runtime times ``attempt`` (Snakemake counts attempts from 1)."""
        factor = max(1, int(attempt))
        return JobSize(self.mem_mb * factor, self.runtime * factor, self.gpu)

    def as_resources(self) -> dict[str, int]:
        out = {"mem_mb": self.mem_mb, "runtime": self.runtime}
        if self.gpu:
            out["gpu"] = self.gpu
        return out


def toy_parameters(toy: dict[str, Any] | None) -> int:
    """Approximate parameter count of a toy model from its ``toy`` settings (ToySpec defaults)."""
    toy = toy or {}
    hidden = int(toy.get("hidden_size", 128))
    layers = int(toy.get("num_layers", 2))
    inter = int(toy.get("intermediate_size", 128)) * int(toy.get("num_experts", 1))
    vocab = int(toy.get("vocab_size", 64))
    return layers * (4 * hidden * hidden + 3 * hidden * inter) + 2 * vocab * hidden


def parameters_of(model_config: dict[str, Any]) -> int:
    """The parameter count used for sizing: ``parameters``, else a toy estimate, else DEFAULT_PARAMETERS."""
    if model_config.get("parameters"):
        return int(model_config["parameters"])
    if model_config.get("source", {}).get("type") == "toy":
        return toy_parameters(model_config.get("toy"))
    return DEFAULT_PARAMETERS


def probe_tokens(probes: dict[str, Any]) -> int:
    """Tokens one revision's head probes run through the model (n_sequences x seq_len, summed)."""
    total = 0
    for kind in ("induction", "repeated", "random"):
        entry = probes.get(kind) or {}
        total += int(entry.get("n_sequences", 0)) * int(entry.get("seq_len", 0))
    return total


def measure_size(model_config: dict[str, Any], dtype: str, probes: dict[str, Any], device: str) -> JobSize:
    """Size of one revision's measurement job (heads or primitives) at attempt 1.

    ``device``: the config's ``device``; ``cpu`` asks for no GPU and a CPU throughput.
    """
    params = parameters_of(model_config)
    mem_mb = BASE_MEM_MB + params * (4 + DTYPE_BYTES[dtype]) * MEM_MARGIN / 2**20
    flops = 2.0 * params * max(probe_tokens(probes), 1)
    seconds = START_UP_S + params * 4 / 1e6 / READ_MB_PER_S + flops / (CPU_FLOPS if device == "cpu" else GPU_FLOPS)
    runtime = max(MIN_RUNTIME_MIN, math.ceil(seconds * RUNTIME_MARGIN / 60))
    return JobSize(mem_mb=int(math.ceil(mem_mb)), runtime=runtime, gpu=0 if device == "cpu" else 1)


def small_size(rule: str) -> JobSize:
    """Size of a job that loads no model (see SMALL_JOBS)."""
    mem_mb, runtime = SMALL_JOBS[rule]
    return JobSize(mem_mb=mem_mb, runtime=runtime, gpu=0)
