"""Memory a measurement job needs, estimated from the probes and the model's config, before allocating.

The one estimate of a measurement job's memory, with no torch: the plan (DAG
build, ``check-config``) refuses what no machine holds, the rules request
:func:`request_mem_mb` of it (``circuitsweep.plan.resources``: the estimate times
the attempt), and the job checks the same estimate against the ``--mem-mb`` it
was given before it loads the weights. Rule and job read the same model
config (the snapshot's ``config.json`` once fetched), so a job sized by its
rule never refuses itself; it refuses a ``mem_mb`` lowered by hand, or a
snapshot larger than the shape declared for planning.

The model is described by its ``config.json`` mapping under transformers'
standard names (``hidden_size``, ``num_hidden_layers``,
``num_attention_heads``, ``intermediate_size``, ``vocab_size``...; a class's
own names such as GPT-2's ``n_embd`` are mapped by
:func:`circuitsweep.config.model_config.standard_config`); the probes by
``ProbeSettings.to_dict()``.

What the estimate counts (bytes), after ``heads/measure.py``:

- ``weights``: parameters x dtype bytes (embeddings, attention, MLP or experts);
- ``lm_head``: the float32 block of LM-head rows used for the in-context loss
  (:data:`LM_HEAD_BLOCK_BYTES`; the whole head when it is smaller);
- ``probe_tokens``: every probe's int64 token matrix, built up front on the host;
- ``attention``: one batch's attention scores and probabilities, float32,
  ``3 x B x H x T x T`` (scores, softmax, the observed copy);
- ``activations``: one batch's hidden states, ``8 x B x T x d`` in the dtype,
  plus the bounded MLP and logit chunks;
- ``runtime``: the interpreter, torch, transformers and a CUDA context (a constant).

It is an estimate, meant to refuse what cannot fit by a wide margin (a
``n_sequences`` of 10**12, a ``seq_len`` of a million), not to pack jobs tightly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitsweep.config.model_config import attention_windows, standard_config
from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.io.contracts import TARGETS

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}
#: Interpreter, torch and transformers once imported (measured about 0.5 GiB on CPU), and on a GPU
#: the CUDA libraries and context in host memory (not measured here; counted as 1.5 GiB more).
RUNTIME_BYTES = 2 << 30
#: Bounded chunks of heads/measure.py: 64 MiB of logits (and their log-softmax) and the MLP chunks.
CHUNK_BYTES = 3 * (64 << 20)
#: Bytes of the LM head converted to float32 at a time for the in-context loss (``heads.measure.LossHead``).
LM_HEAD_BLOCK_BYTES = 32 << 20
#: The largest memory one job may ask for whatever the machine: refuses absurd configs at planning.
MAX_JOB_BYTES = 2 << 40  # 2 TiB
GIB = float(1 << 30)
#: The probes a head measurement runs, by their key under ``probes:`` (``natural_text`` when set).
PROBE_KINDS = ("induction", "repeated", "random", "natural_text")


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one job, by part (bytes); ``host`` parts stay in RAM on a GPU run."""

    parts: dict[str, int]
    host_parts: tuple[str, ...] = ("probe_tokens", "runtime", "spectral")

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def on_host(self) -> MemoryEstimate:
        """The parts that stay in host RAM when the model runs on a GPU."""
        return MemoryEstimate({k: v for k, v in self.parts.items() if k in self.host_parts}, self.host_parts)

    def on_device(self) -> MemoryEstimate:
        """The parts on the GPU when the model runs there."""
        return MemoryEstimate({k: v for k, v in self.parts.items() if k not in self.host_parts}, self.host_parts)

    @property
    def mem_mb(self) -> int:
        """The whole estimate in MB (10**6 bytes, Snakemake's ``mem_mb``), rounded up."""
        return -(-self.total // 10**6)

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.3g}" for k, v in self.parts.items() if v)
        return f"{self.total / GIB:.3g} GiB ({parts} GiB)"


#: The shape assumed for a Hub model that declares none (``models.<name>.shape``) before its snapshot
#: exists: OLMoE-1B-7B's (``config.json`` of allenai/OLMoE-1B-7B-0924), the study's largest model.
DEFAULT_MODEL_CONFIG: dict[str, Any] = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "intermediate_size": 1024,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "vocab_size": 50304,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "max_position_embeddings": 4096,
}


def request_mem_mb(estimate: MemoryEstimate, attempt: int = 1) -> int:
    """The ``mem_mb`` a measurement job requests: the estimate in MB (rounded up) times ``attempt`` (from 1).

    The only factor between what a job asks for and what it checks; a retry
    (after OUT_OF_MEMORY) asks for twice, then three times, the estimate.
    """
    return estimate.mem_mb * max(1, int(attempt))


#: The config keys (transformers' standard names) the estimate cannot do without.
SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads")


def shape_problem(model_config: Mapping[str, Any]) -> str | None:
    """What keeps ``model_config`` from sizing a job (a missing or non-positive :data:`SHAPE_KEYS` value), or None."""
    for key in SHAPE_KEYS:
        value = model_config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return f"{key} is {value!r}, not a positive integer"
    return None


def _shape(model_config: Mapping[str, Any]) -> tuple[int, int, int]:
    problem = shape_problem(model_config)
    if problem is not None:
        raise ConfigError(f"model config: {problem}")
    return tuple(int(model_config[key]) for key in SHAPE_KEYS)  # type: ignore[return-value]


def model_params(model_config: Mapping[str, Any]) -> int:
    """Parameter count of a decoder or encoder from its config (embeddings, attention, MLP or experts).

    Attention: query and output ``d x heads x head_dim``, key and value ``d x kv_heads x head_dim``
    (``head_dim``: ``d / heads`` unless the config says). The MLP is gated (three matrices) for a
    SiLU/SwiGLU activation and for Gemma's (a config with ``hidden_activation``), else two.
    """
    d, layers, heads = _shape(model_config)
    kv_heads = int(model_config.get("num_key_value_heads") or heads)
    head_dim = int(model_config.get("head_dim") or d // heads)
    vocab = int(model_config.get("vocab_size") or 0)
    inner = int(model_config.get("intermediate_size") or 4 * d)
    experts = int(model_config.get("num_experts") or model_config.get("num_local_experts") or 1)
    act = str(model_config.get("hidden_act", "gelu")).lower()
    gated = act in ("silu", "swiglu", "swish") or "hidden_activation" in model_config
    attention = 2 * d * heads * head_dim + 2 * d * kv_heads * head_dim
    mlp = (3 if gated else 2) * d * inner * experts
    tied = bool(model_config.get("tie_word_embeddings", False))
    return vocab * d * (1 if tied else 2) + layers * (attention + mlp + 4 * d)


def probe_token_bytes(probes: Mapping[str, Any]) -> int:
    """Bytes of the three probes' int64 token matrices (built before the first batch)."""
    return sum(
        8 * int(probes[k]["n_sequences"]) * int(probes[k]["seq_len"]) for k in ("induction", "repeated", "random")
    )


def longest_probe(probes: Mapping[str, Any]) -> int:
    """The longest probe sequence, in tokens."""
    return max(int(probes[k]["seq_len"]) for k in ("induction", "repeated", "random"))


#: Bytes per value of a reduced statistic: its float64 running sum and its float32 mean in the result.
STAT_BYTES = 8 + 4


def spectral_sequences(probes: Mapping[str, Any]) -> int:
    """Induction sequences the participation ratio is taken over (``ProbeSettings.spectral_sequences``)."""
    wanted = int((probes.get("spectral") or {}).get("n_sequences", 500))
    return min(wanted, int(probes["induction"]["n_sequences"]))


def kept_bytes(probes: Mapping[str, Any], n_layers: int, n_heads: int, head_dim: int) -> dict[str, int]:
    """Bytes a head measurement may keep from one probe batch to the next, by part: its budget beside one pass.

    Everything a measurement holds across batches is a reduced statistic or the
    spectral capture, never a batch's activations (no ``[B, T, d]`` tensor
    outlives its pass). With N the induction probe's sequences, n =
    :func:`spectral_sequences`, L layers, H heads and ``T_ind``, ``T_rep``,
    ``T_rnd`` the probes' lengths:

    - ``spectral_rows``: ``4 n L H head_dim``, the float32 output-projection rows
      of ``heads.participation.SpectralCapture``; ``spectral_pr``: its ``[L, H]`` result;
    - ``induction_per_sequence``: ``4 N L H (6 + 1)``, each sequence's attention to
      the 6 targets and the baseline (float32, ``contracts.STAT_PER_SEQUENCE``), and
      its validity (one byte);
    - ``induction``: per head the 6 target means, the baseline mean and the
      ``T_ind`` last-row sums (:data:`STAT_BYTES` each), plus the int64 baseline
      record and valid counts;
    - ``repeated``: 3 sums per head and the ``T_rep - 1`` per-position losses;
    - ``random``: ``T_rnd`` attention-to-first sums per head.

    A statistic added to a measurement adds its part here (the guard test,
    ``tests/test_engine_memory.py``, holds the engine to the sum). Not counted:
    the probes' int64 token matrices, built by numpy before the first batch
    (:func:`probe_token_bytes`), and the model.
    """
    ind, rep, rnd = probes["induction"], probes["repeated"], probes["random"]
    heads = n_layers * n_heads
    return {
        "spectral_rows": 4 * spectral_sequences(probes) * heads * head_dim,
        "spectral_pr": 4 * heads,
        "induction_per_sequence": int(ind["n_sequences"]) * (4 * heads * (len(TARGETS) + 1) + 1),
        "induction": STAT_BYTES * heads * (len(TARGETS) + 1 + int(ind["seq_len"]))
        + 8 * (int(ind.get("n_baseline", 50)) + 2),
        "repeated": STAT_BYTES * (3 * heads + int(rep["seq_len"]) - 1),
        "random": STAT_BYTES * heads * int(rnd["seq_len"]),
    }


def estimate_heads_memory(
    probes: Mapping[str, Any], model_config: Mapping[str, Any] | None, dtype: str = "float32"
) -> MemoryEstimate:
    """Peak memory of a head measurement (see the module docstring).

    Without ``model_config`` (a Hub model before download) the model's parts
    are left out and attention counts one head: a lower bound that still
    refuses absurd probe sizes.
    """
    batch = min(
        int(probes["batch_size"]), max(int(probes[k]["n_sequences"]) for k in ("induction", "repeated", "random"))
    )
    length = longest_probe(probes)
    parts = {"probe_tokens": probe_token_bytes(probes), "runtime": RUNTIME_BYTES}
    if model_config is None:
        parts["attention"] = 3 * 4 * batch * length * length
        return MemoryEstimate(parts)
    width = DTYPE_BYTES.get(dtype, 4)
    d, _layers, heads = _shape(model_config)
    parts["weights"] = model_params(model_config) * width
    parts["lm_head"] = min(4 * d * int(model_config.get("vocab_size") or 0), LM_HEAD_BLOCK_BYTES)
    parts["attention"] = 3 * 4 * batch * heads * length * length
    parts["activations"] = 8 * batch * length * d * width + CHUNK_BYTES
    # the participation ratio's captured rows: float32 [n, H * head_dim] per layer, kept on the host
    head_dim = int(model_config.get("head_dim") or d // heads)
    layers = int(model_config.get("num_hidden_layers") or 0)
    parts["spectral"] = kept_bytes(probes, layers, heads, head_dim)["spectral_rows"]
    return MemoryEstimate(parts)


def context_problem(probes: Mapping[str, Any], model_config: Mapping[str, Any], where: str) -> str | None:
    """A probe longer than the model's context (``max_position_embeddings``), as a message naming the key.

    Every probe the run measures: the synthetic ones and the natural-text probe when set.
    """
    limit = model_config.get("max_position_embeddings") or model_config.get("n_positions")
    if not limit:
        return None
    for kind in [kind for kind in PROBE_KINDS if probes.get(kind) is not None]:
        length = int(probes[kind]["seq_len"])
        if length > int(limit):
            return (
                f"{where}.probes.{kind}.seq_len: {length} exceeds the model's context of {limit} positions "
                "(max_position_embeddings); shorten the probe"
            )
    return None


def _spans(layers: list[int]) -> str:
    """``[0, 1, 2, 4]`` as ``0-2, 4``."""
    runs: list[list[int]] = []
    for layer in layers:
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def window_problem(probes: Mapping[str, Any], windows: Sequence[int | None], where: str) -> str | None:
    """A probe longer than a layer's sliding window, as a message naming the key; ``windows`` per layer.

    ``windows``: :func:`circuitsweep.config.model_config.attention_windows`. A
    query at position q of a layer with window W sees positions q - W + 1 .. q,
    so a probe of T > W tokens has queries that cannot see position 0 there
    (nor a repeat more than W - 1 back): their attention to it is 0 by
    construction, and the position-0 and induction scores would measure the
    mask, not the head: zeros that look like results. Every probe the run
    measures, as in :func:`context_problem`; the ablation runs the induction
    probe.
    """
    windowed = [(layer, window) for layer, window in enumerate(windows) if window is not None]
    if not windowed:
        return None
    for kind in [kind for kind in PROBE_KINDS if probes.get(kind) is not None]:
        length = int(probes[kind]["seq_len"])
        short = [(layer, window) for layer, window in windowed if length > window]
        if short:
            window = min(window for _, window in short)
            layers = "layer" + "s" * (len(short) > 1) + " " + _spans([layer for layer, _ in short])
            return (
                f"{where}.probes.{kind}.seq_len: {length} exceeds the {window}-token sliding window of {layers} "
                f"(sliding_window): a query past position {window - 1} there cannot see position 0 or any token "
                f"more than {window - 1} back; use seq_len <= {window}"
            )
    return None


def length_problem(
    probes: Mapping[str, Any], model_config: Mapping[str, Any], where: str, windows: Sequence[int | None] | None = None
) -> str | None:
    """:func:`context_problem`, else :func:`window_problem`; ``windows`` default to those of ``model_config``."""
    problem = context_problem(probes, model_config, where)
    if problem is None:
        problem = window_problem(probes, attention_windows(model_config) if windows is None else windows, where)
    return problem


def vocabulary_problem(
    token_range: Sequence[int], token_id: int | None, vocab: int | None, where: str, model: str
) -> str | None:
    """Probe ids or a first token the model's embedding does not hold (ids ``>= vocab``), as a message naming the key.

    The probes draw ids from ``token_range`` ``[low, high)`` and put ``token_id`` (None: none) at position 0.
    ``where``: the model's key (``models.<name>``); ``model``: whose vocabulary it is (a revision, a config.json).
    The job checks the loaded model; planning a run_dir checkpoint's config.json, so every job would fail alike.
    """
    if not vocab:
        return None
    low, high = token_range
    if high > int(vocab):
        return (
            f"{where}.probes.token_range: [{low}, {high}) exceeds the vocabulary of {vocab} tokens ({model}); "
            f"use a range that ends at {vocab} at most"
        )
    if token_id is not None and token_id >= int(vocab):
        return f"{where}.first_token: token {token_id} exceeds the vocabulary of {vocab} tokens ({model})"
    return None


def machine_memory_bytes() -> int | None:
    """This machine's available RAM (``MemAvailable`` of /proc/meminfo, else physical memory), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


class InsufficientMemoryError(ConfigError):
    """A job that would not fit its memory: unlike other config errors, a retry with more memory may fit."""


def check_fits(estimate: MemoryEstimate, limit: int | None, where: str, what: str) -> None:
    """Raise :class:`InsufficientMemoryError` naming ``where`` when ``estimate`` exceeds ``limit`` bytes (``what``)."""
    if limit is not None and estimate.total > limit:
        raise InsufficientMemoryError(
            f"{where}: the head measurement needs about {estimate.describe()}, more than {what} "
            f"({limit / GIB:.3g} GiB); lower probes.batch_size, n_sequences or seq_len"
        )


def load_model_config(folder: Path | str) -> dict[str, Any]:
    """The ``config.json`` of a model folder under transformers' standard names (:mod:`..config.model_config`).

    Raises :class:`SnapshotError` naming the file when it is missing (or a link to nothing), not
    UTF-8 JSON, not an object, or lacks a shape key the estimate needs.
    """
    path = Path(folder) / "config.json"
    if path.is_symlink() and not path.exists():
        raise SnapshotError(
            f"{path} is a broken symbolic link (to {os.readlink(path)}, which does not exist): "
            "point it at the config.json save_pretrained wrote, or copy that file there"
        )
    if not path.exists():  # raised outside an OSError handler: a rerun would miss it too (plan.retry)
        raise SnapshotError(f"{path} does not exist: a model folder needs the config.json save_pretrained writes")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise SnapshotError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise SnapshotError(f"{path} is not UTF-8 text (byte {error.start}); config.json must be UTF-8 JSON") from None
    except ValueError as error:
        raise SnapshotError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise SnapshotError(f"{path} holds a JSON {type(value).__name__}, not an object")
    config = standard_config(value)
    problem = shape_problem(config)
    if problem is not None:
        raise SnapshotError(f"{path}: {problem} (nor under the name its model_type's config class maps it to)")
    return config


def read_model_config(folder: Path | str) -> dict[str, Any] | None:
    """:func:`load_model_config`, or None when the file is absent or unusable (planning then assumes a shape)."""
    try:
        return load_model_config(folder)
    except SnapshotError:
        return None
