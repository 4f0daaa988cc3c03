"""Speed and memory of circuitsweep's head measurements against the usual way.

Contenders, all on the same probe batches (DESIGN.md 3) of the same
random-initialised model of realistic shape, each in a fresh subprocess:

- ``ours``: :func:`circuitsweep.heads.measure.head_statistics` with the observed SDPA
  attention (statistics reduced inside each layer's attention call, base
  model only, induction and random passes stopped right after the last
  layer's attention, or its output projection's input where the batch
  holds spectral sequences, LM head in 64 MiB chunks on the repeated batch only).
- ``eager``: the reference study's way: eager attention,
  ``output_attentions=True``, the full model with its LM head on every batch,
  fp32, scores computed from the returned patterns.
- ``tl``: TransformerLens (>= 4: ``TransformerBridge`` around the same HF
  model, offline) with ``run_with_cache`` on every batch, scores from the
  cached patterns, and ``head_detector.detect_head`` (previous-token,
  duplicate-token, induction) on every sequence of the repeated batch.

Every contender's scores must equal ours (rtol 1e-4, atol 1e-6 in fp32) or
the benchmark stops with an error before it reports any speed. The last line
is ``speedup_vs_eager=X memory_ratio_vs_eager=Y``: the geometric mean over
the models of (eager seconds / our seconds) and (eager peak memory / our peak
memory); the per-model ratios, the ratio of process CPU times (steadier
on a shared machine), and the line ``memory ratio (eager peak / ours peak):
MODEL xR, ...; geometric mean xG`` are printed just before it.

Usage::

    python benchmarks/heads_speed.py --quick          # < 5 min on 2 CPU cores
    python benchmarks/heads_speed.py                  # full: all 16 OLMo layers
    python benchmarks/heads_speed.py --smoke          # seconds; used by the tests
    python benchmarks/heads_speed.py --device cuda --gpu-pythia-1b
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- models

#: Shapes of the benchmarked models (public configs of the named checkpoints).
MODELS: dict[str, dict[str, Any]] = {
    "pythia-70m": dict(
        arch="GPTNeoXForCausalLM", layers=6, hidden=512, heads=8, intermediate=2048, vocab=50304, max_pos=2048
    ),
    "olmo-1b": dict(
        arch="OlmoForCausalLM", layers=16, hidden=2048, heads=16, intermediate=8192, vocab=50304, max_pos=2048
    ),
    "pythia-1b": dict(
        arch="GPTNeoXForCausalLM", layers=16, hidden=2048, heads=8, intermediate=8192, vocab=50304, max_pos=2048
    ),
}

#: Score columns compared between contenders (names of ``circuitsweep.heads.scores.head_scores``).
SEL_TARGETS = ("first", "induction", "duplicate", "previous", "self", "local")
COMPARED = (
    *(f"sel_{t}" for t in SEL_TARGETS),
    "baseline_attention",
    "sink_alpha",
    "prefix_matching",
    "previous_token",
    "duplicate_token",
)

#: Probe sizes per mode: (induction N, repeated N, random N, batch size); seq lens below.
MODES: dict[str, dict[str, Any]] = {
    # seconds: realistic model shapes, tiny probes (T = 64 keeps room for the first A at >= 20)
    "smoke": dict(
        induction=4, repeated=2, random=2, batch=2, seq_len=64, random_len=64, olmo_layers=1, contenders="ours,eager"
    ),
    # < 5 min on 2 cores: the study's probe geometry (T = 256) and proportions of sequences
    # (induction : repeated : random = 2000 : 256 : 256 ~ 8 : 1 : 1), fewer of them; 2 OLMo layers
    "quick": dict(
        induction=64,
        repeated=8,
        random=8,
        batch=16,
        seq_len=256,
        random_len=64,
        olmo_layers=2,
        olmo=dict(induction=16, repeated=2, random=2),
    ),
    # full model depth; sequence counts sized for a CPU (the study's counts on CUDA)
    "full": dict(
        induction=256,
        repeated=32,
        random=32,
        batch=16,
        seq_len=256,
        random_len=64,
        olmo_layers=16,
        olmo=dict(induction=32, repeated=4, random=4),
    ),
    "full-cuda": dict(induction=2000, repeated=256, random=256, batch=16, seq_len=256, random_len=64, olmo_layers=16),
    # the study's probe: 2000 x 256 induction, repeated 256 x 256, random 256 x 64 (config defaults)
    "study": dict(induction=2000, repeated=256, random=256, batch=16, seq_len=256, random_len=64, olmo_layers=16),
}

TOKEN_RANGE = (100, 10000)
RTOL, ATOL = 1e-4, 1e-6


def probe_dict(mode: dict[str, Any]) -> dict[str, Any]:
    """The resolved ``probes`` config of a mode (seeds and geometry as the study's defaults)."""
    return {
        "kind": "random_tokens",
        "token_range": list(TOKEN_RANGE),
        "batch_size": mode["batch"],
        "induction": {
            "n_sequences": mode["induction"],
            "seq_len": mode["seq_len"],
            "seed": 42,
            "min_first_position": 20,
            "n_baseline": 50,
            "baseline_seed": 0,
        },
        "repeated": {"n_sequences": mode["repeated"], "seq_len": mode["seq_len"], "seed": 1},
        "random": {"n_sequences": mode["random"], "seq_len": mode["random_len"], "seed": 2},
    }


def build_model(name: str, layers: int, attn_implementation: str, seed: int = 0):
    """A random-initialised model of ``name``'s shape (weights depend only on name, layers, seed)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, OlmoConfig, OlmoForCausalLM

    spec = MODELS[name]
    common = dict(
        vocab_size=spec["vocab"],
        hidden_size=spec["hidden"],
        num_hidden_layers=layers,
        num_attention_heads=spec["heads"],
        intermediate_size=spec["intermediate"],
        max_position_embeddings=spec["max_pos"],
        attn_implementation=attn_implementation,
    )
    torch.manual_seed(seed)
    if spec["arch"] == "GPTNeoXForCausalLM":
        config = GPTNeoXConfig(**common, rotary_pct=0.25, rotary_emb_base=10000, tie_word_embeddings=False)
        model = GPTNeoXForCausalLM(config)
    else:
        config = OlmoConfig(**common, tie_word_embeddings=True, pad_token_id=1, eos_token_id=50279)
        model = OlmoForCausalLM(config)
    model.config.architectures = [spec["arch"]]
    return model.eval()


# --------------------------------------------------------------------------- worker helpers


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> bool:
    """Hand the allocator's free heap pages back to the system (glibc ``malloc_trim``); False where unavailable.

    With ``--trim-heap``, called before measuring, so that the resident size
    the peak is measured from holds no free pages that the measurement could
    reuse without growing: without it the measured growth depends on what
    the model's build and the warm-up happened to leave free (pythia-70m:
    78 to 167 MB in five runs of one engine, some below the 97 MB of tensors
    it holds at once).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (and so ru_maxrss) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory growth of the measured block: RSS on CPU, allocated bytes on CUDA."""

    def __init__(self, device, trim_heap: bool = False) -> None:
        self.device = device
        self.trim_heap = trim_heap
        self.note = ""

    def __enter__(self) -> MemoryMeter:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
        else:
            if self.trim_heap and not _trim_heap():
                self.note = "malloc_trim unavailable: the peak may reuse free heap pages"
            if not _reset_peak_rss():
                self.note = "peak RSS could not be reset; ru_maxrss may include the build"
            self.before = _rss_bytes()
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.seconds = time.perf_counter() - self.start
            self.cpu_seconds = time.process_time() - self.cpu_start
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.before
        else:
            self.seconds = time.perf_counter() - self.start
            self.cpu_seconds = time.process_time() - self.cpu_start
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.before


def batches_digest(probes) -> str:
    """SHA-256 of the three probe batches (proves that every contender saw the same tokens)."""
    from circuitsweep.heads.probes import induction_probe, random_batch, repeated_batch

    ind, rep, rnd = probes.induction, probes.repeated, probes.random
    digest = hashlib.sha256()
    probe = induction_probe(ind.n_sequences, ind.seq_len, probes.token_range, ind.seed, ind.min_first_position, None)
    digest.update(probe.tokens.numpy().tobytes())
    digest.update(probe.first_a.numpy().tobytes())
    digest.update(repeated_batch(rep.n_sequences, rep.seq_len, probes.token_range, rep.seed, None).numpy().tobytes())
    digest.update(random_batch(rnd.n_sequences, rnd.seq_len, probes.token_range, rnd.seed, None).numpy().tobytes())
    return digest.hexdigest()[:12]


def _slices(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class PatternScores:
    """The DESIGN.md 3 scores reduced from full ``[B, H, T, T]`` patterns, one layer at a time.

    The reference logic of ``tests/test_scores_reference.py``, accumulated per
    batch in float64 so that no contender has to keep a whole probe's patterns.
    """

    def __init__(self, n_layers: int, n_heads: int, baseline) -> None:
        import torch

        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        self.baseline = baseline
        self.target = z(n_layers, n_heads, len(SEL_TARGETS))
        self.base = z(n_layers, n_heads)
        self.n_induction = 0
        self.prefix, self.duplicate, self.previous = z(n_layers, n_heads), z(n_layers, n_heads), z(n_layers, n_heads)
        self.n_repeated = 0
        self.loss_sum = None
        self.sink = z(n_layers, n_heads)
        self.n_random = 0

    def induction(self, layer: int, attn, first_a) -> None:
        """attn: ``[B, H, T, T]`` of one layer on an induction-probe batch; first_a: ``[B]``."""
        import torch

        q = attn.shape[-1] - 1
        rows = attn[:, :, q, :].double()  # [B, H, T]
        n = torch.arange(len(first_a))
        p = first_a.to(rows.device)
        local = [q - k for k in (2, 3, 4, 5)]
        targets = {
            "first": rows[..., 0],
            "induction": rows[n, :, p + 1],
            "duplicate": rows[n, :, p],
            "previous": rows[..., q - 1],
            "self": rows[..., q],
            "local": rows[..., local].mean(-1),
        }
        self.target[layer] += torch.stack([targets[t].sum(0).cpu() for t in SEL_TARGETS], -1)
        self.base[layer] += rows[..., self.baseline.to(rows.device)].mean(-1).sum(0).cpu()

    def repeated(self, layer: int, attn) -> None:
        import torch

        T = attn.shape[-1]
        half = T // 2
        queries = torch.arange(half + 1, T, device=attn.device)
        mean = lambda keys: attn[:, :, queries, keys].double().mean(-1).sum(0).cpu()  # noqa: E731
        self.prefix[layer] += mean(queries - half + 1)
        self.duplicate[layer] += mean(queries - half)
        self.previous[layer] += mean(queries - 1)

    def losses(self, logits, tokens) -> None:
        """Next-token cross-entropy of the repeated batch, summed per position in float64."""
        import torch.nn.functional as F

        V = logits.shape[-1]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), tokens[:, 1:].reshape(-1), reduction="none")
        total = loss.view(len(tokens), -1).double().sum(0).cpu()
        self.loss_sum = total if self.loss_sum is None else self.loss_sum + total

    def random(self, layer: int, attn) -> None:
        self.sink[layer] += attn[:, :, :, 0].double().mean(-1).sum(0).cpu()

    def result(self) -> dict[str, Any]:
        baseline = self.base / self.n_induction
        target = self.target / self.n_induction
        out = {f"sel_{t}": target[..., i] / baseline.clamp_min(1e-8) for i, t in enumerate(SEL_TARGETS)}
        out["baseline_attention"] = baseline
        out["sink_alpha"] = self.sink / self.n_random
        out["prefix_matching"] = self.prefix / self.n_repeated
        out["duplicate_token"] = self.duplicate / self.n_repeated
        out["previous_token"] = self.previous / self.n_repeated
        per_position = self.loss_sum / self.n_repeated  # index i predicts token i + 1
        half = (len(per_position) + 1) // 2
        halves = (float(per_position[: half - 1].mean()), float(per_position[half:].mean()))
        return {"scores": {k: v.tolist() for k, v in out.items()}, "loss_halves": halves}


def _probe_batches(probes):
    from circuitsweep.heads.probes import baseline_positions, induction_probe, random_batch, repeated_batch

    ind, rep, rnd = probes.induction, probes.repeated, probes.random
    probe = induction_probe(ind.n_sequences, ind.seq_len, probes.token_range, ind.seed, ind.min_first_position, None)
    base = baseline_positions(ind.seq_len, ind.n_baseline, ind.baseline_seed)
    repeated = repeated_batch(rep.n_sequences, rep.seq_len, probes.token_range, rep.seed, None)
    rand = random_batch(rnd.n_sequences, rnd.seq_len, probes.token_range, rnd.seed, None)
    return probe, base, repeated, rand


# --------------------------------------------------------------------------- contenders


def run_ours(model, probes, device) -> dict[str, Any]:
    from circuitsweep.heads.measure import head_statistics
    from circuitsweep.heads.scores import head_scores, loss_halves

    stats = head_statistics(model, probes, None, device, progress=False)
    frame = head_scores(stats)
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    scores = {c: frame[c].to_numpy().reshape(L, H).tolist() for c in COMPARED}
    return {"scores": scores, "loss_halves": loss_halves(stats)}


def run_eager(model, probes, device) -> dict[str, Any]:
    """The study's way: eager attention, output_attentions=True, full model with LM head."""
    import torch

    probe, base, repeated, rand = _probe_batches(probes)
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    acc = PatternScores(L, H, base)
    size = probes.batch_size
    with torch.no_grad():
        for part in _slices(len(probe.tokens), size):
            out = model(input_ids=probe.tokens[part].to(device), output_attentions=True)
            for layer, attn in enumerate(out.attentions):
                acc.induction(layer, attn, probe.first_a[part])
            acc.n_induction += part.stop - part.start
            del out
        for part in _slices(len(repeated), size):
            tokens = repeated[part].to(device)
            out = model(input_ids=tokens, output_attentions=True)
            for layer, attn in enumerate(out.attentions):
                acc.repeated(layer, attn)
            acc.losses(out.logits, tokens)
            acc.n_repeated += len(tokens)
            del out
        for part in _slices(len(rand), size):
            out = model(input_ids=rand[part].to(device), output_attentions=True)
            for layer, attn in enumerate(out.attentions):
                acc.random(layer, attn)
            acc.n_random += part.stop - part.start
            del out
    return acc.result()


def offline_tokenizer(vocab_size: int):
    """A word-level tokenizer whose word ``<tN>`` is token id N (TransformerLens tokenizes strings)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"<t{i}>": i for i in range(vocab_size)}, unk_token="<t0>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<t0>", pad_token="<t1>", eos_token="<t2>")


def load_tl(name: str, model, device):
    """Wrap the HF model in a TransformerLens bridge without the Hub (TransformerLens >= 4)."""
    import logging

    import torch
    from transformer_lens.model_bridge import TransformerBridge

    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    bridge = TransformerBridge.boot_transformers(
        f"offline/{name}",
        hf_model=model,
        tokenizer=offline_tokenizer(model.config.vocab_size),
        device=str(device),
        dtype=torch.float32,
    )
    bridge.cfg.default_prepend_bos = False
    bridge.eval()
    return bridge


def run_tl(bridge, probes, device) -> dict[str, Any]:
    """TransformerLens: run_with_cache on every batch, detect_head on the repeated batch."""
    import torch
    from transformer_lens.head_detector import detect_head

    probe, base, repeated, rand = _probe_batches(probes)
    L, H = bridge.cfg.n_layers, bridge.cfg.n_heads
    acc = PatternScores(L, H, base)
    size = probes.batch_size
    detected = {
        k: torch.zeros(L, H, dtype=torch.float64)
        for k in ("previous_token_head", "duplicate_token_head", "induction_head")
    }
    with torch.no_grad():
        for part in _slices(len(probe.tokens), size):
            _, cache = bridge.run_with_cache(probe.tokens[part].to(device))
            for layer in range(L):
                acc.induction(layer, cache["pattern", layer], probe.first_a[part])
            acc.n_induction += part.stop - part.start
            del cache
        for part in _slices(len(repeated), size):
            tokens = repeated[part].to(device)
            logits, cache = bridge.run_with_cache(tokens)
            for layer in range(L):
                acc.repeated(layer, cache["pattern", layer])
            acc.losses(logits, tokens)
            acc.n_repeated += len(tokens)
            # detect_head scores one prompt (a string) against a cache of that one prompt
            for i, row in enumerate(tokens.tolist()):
                one = cache.apply_slice_to_batch_dim(i)
                text = " ".join(f"<t{t}>" for t in row)
                for kind, total in detected.items():
                    total += detect_head(bridge, text, kind, cache=one).double().cpu()
            del cache, logits
        for part in _slices(len(rand), size):
            _, cache = bridge.run_with_cache(rand[part].to(device))
            for layer in range(L):
                acc.random(layer, cache["pattern", layer])
            acc.n_random += part.stop - part.start
            del cache
    out = acc.result()
    out["detect_head"] = {k: (v / len(repeated)).tolist() for k, v in detected.items()}
    return out


#: Names of the attention input projections (GPT-NeoX fused, OLMo split): the only linear layers of the
#: last decoder layer that ours runs on the passes it stops after the last attention.
QKV_NAMES = ("query_key_value", "q_proj", "k_proj", "v_proj")


def linear_weights(model) -> dict[str, int]:
    """Weight count of every linear layer of the base model (no LM head), by module name."""
    import torch

    return {n: m.weight.numel() for n, m in model.base_model.named_modules() if isinstance(m, torch.nn.Linear)}


def forward_flops(model, probes) -> float:
    """FLOPs of the forward passes ours runs: linear layers of the base model, attention, LM head on repeated.

    2 x (weights of the linear layers in the decoder layers) per token, plus
    4 T^2 d per layer and sequence for QK^T and AV (full T x T), plus
    2 d V per position of the repeated batch for the LM head. The induction
    and random passes stop right after the last layer's attention inputs (ours
    needs nothing after them), so there the last layer counts only its query,
    key and value projections and no attention product. The verification pass
    (one full forward of ``VERIFY_TOKENS`` tokens, whose logits at every
    position the model's LM head and the loss head both compute) is counted
    too. The observers' own probability rows are not counted.
    """
    from circuitsweep.heads.verify import VERIFY_TOKENS

    cfg = model.config
    d, V, L = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
    linear = linear_weights(model)
    in_last = {n: w for n, w in linear.items() if f"layers.{L - 1}." in n}
    if not in_last:
        raise RuntimeError(f"forward_flops: no linear layer of decoder layer {L - 1} found by name")
    full = sum(linear.values())
    truncated = full - sum(in_last.values()) + sum(w for n, w in in_last.items() if n.rsplit(".", 1)[-1] in QKV_NAMES)
    total = 0.0
    for b, weights, layers in (
        (probes.induction, truncated, L - 1),
        (probes.repeated, full, L),
        (probes.random, truncated, L - 1),
    ):
        tokens = b.n_sequences * b.seq_len
        total += 2 * weights * tokens + 4 * b.seq_len**2 * d * layers * b.n_sequences
    total += 2 * d * V * probes.repeated.n_sequences * (probes.repeated.seq_len - 1)
    total += 2 * full * VERIFY_TOKENS + 4 * VERIFY_TOKENS**2 * d * L + 2 * (2 * d * V * VERIFY_TOKENS)
    return total


def eager_flops(model, probes) -> float:
    """FLOPs of the study's way on the same batches: every pass through all layers and the LM head at every position.

    Counted like :func:`forward_flops`; the ratio of the two is the speedup an
    exact engine at eager's dtype gets from the work it leaves out, before any
    gain from running the same work faster.
    """
    cfg = model.config
    d, V, L = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
    weights = sum(linear_weights(model).values())
    total = 0.0
    for b in (probes.induction, probes.repeated, probes.random):
        tokens = b.n_sequences * b.seq_len
        total += 2 * weights * tokens + 4 * b.seq_len**2 * d * L * b.n_sequences + 2 * d * V * tokens
    return total


def worker_main(spec: dict[str, Any]) -> dict[str, Any]:
    """One contender on one model, in this fresh process; returns seconds, peak bytes and scores."""
    import torch

    warnings.filterwarnings("ignore")
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    from circuitsweep.heads.attention_hook import register
    from circuitsweep.heads.measure import ProbeSettings

    probes = ProbeSettings.from_dict(spec["probes"])
    contender = spec["contender"]
    dtype = getattr(torch, spec["dtype"]) if contender == "ours" else torch.float32
    info: dict[str, Any] = {"dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads()}
    if contender == "tl":
        try:
            import transformer_lens
        except ImportError as exc:
            return {"skipped": f"transformer_lens not importable: {exc}"}
        info["tl_version"] = getattr(transformer_lens, "__version__", None) or _dist_version("transformer-lens")
    attn = register() if contender == "ours" else "eager"
    model = build_model(spec["model"], spec["layers"], attn).to(device=device, dtype=dtype)
    if contender == "tl":
        try:
            model = load_tl(spec["model"], model, device)
        except Exception as exc:  # noqa: BLE001 - report any loading failure as a skip
            return {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
    digest = batches_digest(probes)
    # import everything the contenders use before measuring (polars, tqdm, transformer_lens)
    import circuitsweep.heads.measure  # noqa: F401
    import circuitsweep.heads.scores  # noqa: F401

    if contender == "tl":
        import transformer_lens.head_detector  # noqa: F401
    runner = {"ours": run_ours, "eager": run_eager, "tl": run_tl}[contender]
    # warm-up: one tiny batch, so lazy initialisation is not timed (same for every contender)
    with torch.no_grad():
        warm = torch.randint(*TOKEN_RANGE, (1, 32), device=device)
        (model.base_model if contender == "ours" else model)(warm)
    if contender == "ours":
        before = matmul_throughput(device, dtype, spec["matmul_seconds"] / 2)
    meter = MemoryMeter(device, spec.get("trim_heap", False))
    with meter:
        result = runner(model, probes, device)
    if contender == "ours":
        after = matmul_throughput(device, dtype, spec["matmul_seconds"] / 2)
        result["matmul"] = {
            **before,
            "flops_per_s": (before["flops_per_s"] + after["flops_per_s"]) / 2,
            "samples": [before["flops_per_s"], after["flops_per_s"]],
        }
    result.update(info)
    result.update(
        seconds=meter.seconds,
        cpu_seconds=meter.cpu_seconds,
        peak_bytes=meter.peak,
        digest=digest,
        memory_note=meter.note,
    )
    if contender == "ours":
        result["flops"] = forward_flops(model, probes)
        result["eager_flops"] = eager_flops(model, probes)
    return result


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def matmul_throughput(device, dtype, seconds: float) -> dict[str, Any]:
    """Dense square-matmul FLOP/s on these threads: n = 2048 on CPU, 8192 on CUDA."""
    import torch

    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        torch.mm(a, b)
    sync()
    count, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        count += 1
        if count % 4 == 0 or device.type != "cuda":
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    return {"flops_per_s": 2 * n**3 * count / elapsed, "n": n, "dtype": str(dtype).removeprefix("torch.")}


# --------------------------------------------------------------------------- parent


@dataclass
class Row:
    contender: str
    model: str
    result: dict[str, Any]


def spawn(spec: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Run one contender in a fresh interpreter and return its JSON result."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec), "--result", out.name]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(
                f"worker {spec['contender']} on {spec.get('model')} failed (exit {proc.returncode}):\n"
                + proc.stderr[-4000:]
            )
        return json.loads(Path(out.name).read_text())


def compare(ours: dict[str, Any], other: dict[str, Any], who: str, model: str, rtol: float, atol: float) -> float:
    """Largest relative difference of any score; exits if any exceeds the tolerance."""
    import numpy as np

    worst = 0.0
    problems = []
    for column in COMPARED:
        a, b = np.asarray(ours["scores"][column]), np.asarray(other["scores"][column])
        if a.shape != b.shape:
            problems.append(f"{column}: shape {b.shape} vs ours {a.shape}")
            continue
        diff = np.abs(a - b)
        worst = max(worst, float((diff / np.maximum(np.abs(a), 1e-12)).max()))
        if not np.all(diff <= atol + rtol * np.abs(a)):
            i = np.unravel_index(np.argmax(diff - rtol * np.abs(a)), a.shape)
            problems.append(f"{column}[layer {i[0]}, head {i[1]}]: {who} {b[i]:.8g} vs ours {a[i]:.8g}")
    for name, a, b in zip(
        ("first-half loss", "second-half loss"), ours["loss_halves"], other["loss_halves"], strict=True
    ):
        if not math.isclose(a, b, rel_tol=rtol, abs_tol=atol):
            problems.append(f"{name}: {who} {b:.8g} vs ours {a:.8g}")
    if problems:
        sys.stdout.flush()
        print(f"\nERROR: {who} and ours disagree on {model} (rtol {rtol}, atol {atol}):", file=sys.stderr)
        for p in problems[:20]:
            print("  " + p, file=sys.stderr)
        raise SystemExit(2)
    return worst


def run_label(model: str, layers: int) -> str:
    """The report's name of a model: its name, with ``(k/L layers)`` where it is cut to k of its L layers."""
    return model if layers == MODELS[model]["layers"] else f"{model} ({layers}/{MODELS[model]['layers']} layers)"


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


#: The report's memory line: eager's peak over ours per model, and their geometric mean (docs quote it).
MEMORY_LINE = re.compile(
    r"^memory ratio \(eager peak / ours peak\): (?P<models>.+); geometric mean x(?P<mean>\d+\.\d+)$"
)
MEMORY_MODEL = re.compile(r"(?P<model>[^,]+?) x(?P<ratio>\d+\.\d+)(?:, |$)")


def memory_line(labels: list[str], ratios: list[float]) -> str:
    """``memory ratio (eager peak / ours peak): MODEL xR, ...; geometric mean xG`` (:data:`MEMORY_LINE`)."""
    models = ", ".join(f"{label} x{ratio:.2f}" for label, ratio in zip(labels, ratios, strict=True))
    return f"memory ratio (eager peak / ours peak): {models}; geometric mean x{geomean(ratios):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer sequences and 2 OLMo layers (< 5 min on 2 cores)")
    size.add_argument("--smoke", action="store_true", help="tiny probes and 1 OLMo layer, for the tests (seconds)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--models", default="pythia-70m,olmo-1b", help="comma-separated of " + ", ".join(MODELS))
    parser.add_argument(
        "--contenders", help="comma-separated of ours, eager, tl (default: all three; --smoke: ours,eager)"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="our dtype (eager and tl: float32, as the study)",
    )
    parser.add_argument(
        "--olmo-layers", type=int, help="layers of the OLMo-shaped model (default: 16; --quick 2, --smoke 1)"
    )
    parser.add_argument(
        "--gpu-pythia-1b",
        action="store_true",
        help="also time a Pythia-1B-shaped model on the study's probe (2000 x 256); for a GPU",
    )
    parser.add_argument(
        "--sequences",
        metavar="I,R,S",
        help="override the number of induction, repeated and random sequences of every model (e.g. 16,2,2)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads in every worker (default: 1 on CPU, where a shared machine makes "
        "multi-threaded timings erratic; torch's default on CUDA)",
    )
    parser.add_argument(
        "--matmul-seconds",
        type=float,
        default=2.0,
        help="seconds of matmuls around our measurement (half before, half after)",
    )
    parser.add_argument(
        "--trim-heap",
        action="store_true",
        help="CPU: return the allocator's free heap pages (malloc_trim) before each measurement, so that no "
        "contender's peak reuses pages its set-up left free (steadier, and higher for ours)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker_main(json.loads(args.worker))
        Path(args.result).write_text(json.dumps(result))
        return 0

    started = time.perf_counter()
    cuda = args.device.startswith("cuda")
    mode_name = "smoke" if args.smoke else "quick" if args.quick else ("full-cuda" if cuda else "full")
    mode = MODES[mode_name]
    olmo_layers = args.olmo_layers or mode["olmo_layers"]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    contenders = [
        c.strip() for c in (args.contenders or mode.get("contenders", "ours,eager,tl")).split(",") if c.strip()
    ]
    for m in models:
        if m not in MODELS:
            parser.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    if "ours" not in contenders or "eager" not in contenders:
        parser.error("--contenders must include ours and eager (the final line compares them)")
    runs: list[tuple[str, int, dict[str, Any], str]] = []  # (model, layers, probes, label)
    for m in models:
        layers = olmo_layers if m == "olmo-1b" else MODELS[m]["layers"]
        label = run_label(m, layers)
        sizes = {**mode, **mode.get("olmo", {})} if m == "olmo-1b" else dict(mode)
        if args.sequences:
            sizes.update(zip(("induction", "repeated", "random"), map(int, args.sequences.split(",")), strict=True))
        runs.append((m, layers, probe_dict(sizes), label))
    if args.gpu_pythia_1b:
        if not cuda:
            parser.error("--gpu-pythia-1b is meant for a GPU machine: add --device cuda")
        runs.append(("pythia-1b", MODELS["pythia-1b"]["layers"], probe_dict(MODES["study"]), "pythia-1b (study probe)"))
    exact = args.dtype == "float32"
    rtol, atol = (RTOL, ATOL) if exact else (5e-2, 1e-3)

    if args.threads is None and not cuda:
        args.threads = 1
    threads = args.threads or "torch default"
    print(
        f"heads_speed: mode={mode_name} device={args.device} threads={threads} "
        f"ours dtype={args.dtype}, eager/tl float32" + (" heap trimmed before measuring" if args.trim_heap else "")
    )
    for _, _, probes, label in runs:
        ind, rep, rnd = probes["induction"], probes["repeated"], probes["random"]
        print(
            f"probes of {label}: induction {ind['n_sequences']} x {ind['seq_len']}, repeated {rep['n_sequences']} x "
            f"{rep['seq_len']}, random {rnd['n_sequences']} x {rnd['seq_len']}, batch {probes['batch_size']}, "
            f"tokens {tuple(probes['token_range'])}"
        )
    if olmo_layers != MODELS["olmo-1b"]["layers"] and "olmo-1b" in models:
        print(
            f"note: the OLMo-1B-shaped model has {olmo_layers} of OLMo-1B's 16 layers (per-layer shape unchanged); "
            "its LM head is a larger share of the work and eager's attention patterns a smaller share of the memory "
            "than at full depth, so its speedup is higher and its memory ratio lower than OLMo-1B's"
        )
    sys.stdout.flush()

    base = {
        "device": args.device,
        "threads": args.threads,
        "dtype": args.dtype,
        "matmul_seconds": args.matmul_seconds,
        "trim_heap": args.trim_heap,
    }
    rows: list[Row] = []
    speedups, cpu_speedups, mem_ratios, shares, work_ratios = [], [], [], [], []
    for model, layers, probes, label in runs:
        results: dict[str, dict[str, Any]] = {}
        for contender in contenders:
            spec = {**base, "contender": contender, "model": model, "layers": layers, "probes": probes}
            results[contender] = spawn(spec, None)
            rows.append(Row(contender, label, results[contender]))
        ours = results["ours"]
        for contender, res in results.items():
            if contender == "ours" or "skipped" in res:
                continue
            if res["digest"] != ours["digest"]:
                raise SystemExit(f"ERROR: {contender} saw other probe batches than ours on {label}")
            res["max_rel_diff"] = compare(ours, res, contender, label, rtol, atol)
        eager = results["eager"]
        speedups.append(eager["seconds"] / ours["seconds"])
        cpu_speedups.append(eager["cpu_seconds"] / ours["cpu_seconds"])
        mem_ratios.append(eager["peak_bytes"] / max(ours["peak_bytes"], 1))
        shares.append((label, ours["flops"] / ours["seconds"], ours["flops"], ours["matmul"]))
        work_ratios.append(ours["eager_flops"] / ours["flops"])

    # ------------------------------------------------------------------ report
    print()
    header = f"{'contender':<10} {'model':<30} {'seconds':>9} {'CPU s':>9} {'peak MB':>9}  notes"
    print(header)
    print("-" * len(header))
    for row in rows:
        r = row.result
        if "skipped" in r:
            print(f"{row.contender:<10} {row.model:<30} {'-':>9} {'-':>9} {'-':>9}  skipped ({r['skipped']})")
            continue
        notes = [r["dtype"], f"batches {r['digest']}"]
        if row.contender == "ours":
            notes.append("agreement reference")
        else:
            notes.append(f"scores match ours (max rel diff {r['max_rel_diff']:.1e})")
        if row.contender == "tl":
            notes.append(
                f"transformer-lens {r.get('tl_version')} TransformerBridge; detect_head x3 per repeated sequence"
            )
        if r.get("memory_note"):
            notes.append(r["memory_note"])
        print(
            f"{row.contender:<10} {row.model:<30} {r['seconds']:>9.2f} {r['cpu_seconds']:>9.2f} "
            f"{r['peak_bytes'] / 2**20:>9.1f}  " + "; ".join(notes)
        )
    for row in rows:
        if row.contender == "tl" and "skipped" in row.result:
            print(f"transformer_lens: skipped ({row.result['skipped']})")
    print()
    for label, achieved, flops, mm in shares:
        peak = mm["flops_per_s"]
        print(
            f"ours on {label}: {flops / 1e12:.3f} TFLOP of forward passes at {achieved / 1e9:.1f} GFLOP/s "
            f"= {100 * achieved / peak:.0f}% of the dense matmul throughput, {peak / 1e9:.1f} GFLOP/s "
            f"({mm['dtype']} {mm['n']}x{mm['n']} matmuls in the same process just before and after: "
            + ", ".join(f"{x / 1e9:.1f}" for x in mm["samples"])
            + ")"
        )
    per_model = ", ".join(
        f"{lbl}: time x{s:.2f} (CPU time x{c:.2f}), memory x{m:.2f}"
        for (_, _, _, lbl), s, c, m in zip(runs, speedups, cpu_speedups, mem_ratios, strict=True)
    )
    print(f"eager / ours per model: {per_model}")
    print(memory_line([lbl for _, _, _, lbl in runs], mem_ratios))
    print(
        "eager's FLOPs / ours (the speedup from the work left out, at equal throughput): "
        + ", ".join(f"{lbl}: x{w:.2f}" for (_, _, _, lbl), w in zip(runs, work_ratios, strict=True))
    )
    print(
        f"aggregate: geometric mean over {len(runs)} model(s); speedup in process CPU time "
        f"{geomean(cpu_speedups):.3f}; wall time {time.perf_counter() - started:.0f} s"
    )
    print(f"speedup_vs_eager={geomean(speedups):.3f} memory_ratio_vs_eager={geomean(mem_ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
