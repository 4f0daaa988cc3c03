"""Real-scale rehearsal: fetch, verify, load and measure 1B-class checkpoints, each against a plain baseline.

For each model shape below (from the published ``config.json`` of the three
study models: layers, width, heads, vocabulary, experts, file format and
dtype as published) a random-weight checkpoint of the real size is written
into a local hub folder, served by the loopback Hub server of the tests
(``tests/hubserver.py``) and run through the sweep's own code, each part in
the process a Snakemake job would use:

- fetch job: ``checkpoints.snapshots.fetch_snapshot`` (HTTP download into the
  revision's snapshot folder and sha256 verification of every file);
- measure job: ``checkpoints.loading.load_model`` (configured dtype) and
  ``heads.stage.measure_loaded`` with a short probe (CPU time stays small).

Per model it prints, against baselines measured in the same run on the same bytes:

- ``fetch_ratio``: fetch + verify seconds / (plain copy of the files + one ``sha256sum`` pass);
- ``load_ratio``: load seconds / plain read of the weight files from the page
  cache (each file read whole into a fresh buffer, as ``read()`` does; the
  best of two processes of their own). Also printed: the conversion floor
  (every stored tensor copied into a fresh tensor of the configured dtype,
  nothing else) and a page-cache copy into one reused buffer (a lower bound
  of any read);
- ``peak_rss_ratio``: the measure job's peak resident memory (VmHWM, whole
  process, imports included) / bytes of the weights in the configured dtype;
- ``measure_ratio``: measurement seconds / plain SDPA forward passes (full
  model, LM head) over the same probe batches, in the same process;
- each job's wall time split into start-up (interpreter + imports) and those parts.

Usage::

    python benchmarks/real_scale.py --quick     # Pythia-1B shape only (~4 GB disk); last line:
                                                # fetch_ratio=A load_ratio=B peak_rss_ratio=C measure_ratio=D
    python benchmarks/real_scale.py             # the three shapes (OLMoE: 13.8 GB file, 14 GB RAM)
    python benchmarks/real_scale.py --tiny      # the same plumbing on tiny shapes (seconds; the tests)

It refuses to start when the free disk under ``--workdir`` is less than it
needs, and deletes everything it wrote (``--keep`` to keep it). The ratios
with more than one model are the worst over the models.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "tests")]

#: The three study models as published (config.json of each repository; file layout of its main branch).
SHAPES: dict[str, dict[str, Any]] = {
    "pythia-1b": dict(
        repo_id="EleutherAI/pythia-1b",
        architecture="GPTNeoXForCausalLM",
        config=dict(
            model_type="gpt_neox",
            hidden_size=2048,
            num_hidden_layers=16,
            num_attention_heads=8,
            intermediate_size=8192,
            vocab_size=50304,
            max_position_embeddings=2048,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
        ),
        format="bin",  # one pickled pytorch_model.bin, as every Pythia branch
        stored="float16",
        configured="float32",  # config/full.yaml
        shard_bytes=None,
    ),
    "olmo-1b-0724": dict(
        repo_id="allenai/OLMo-1B-0724-hf",
        architecture="OlmoForCausalLM",
        config=dict(
            model_type="olmo",
            hidden_size=2048,
            num_hidden_layers=16,
            num_attention_heads=16,
            num_key_value_heads=16,
            intermediate_size=8192,
            vocab_size=50304,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            pad_token_id=1,
            eos_token_id=50279,
        ),
        format="safetensors",
        stored="float32",
        configured="float16",
        shard_bytes=5_000_000_000,
    ),
    "olmoe-1b-7b": dict(
        repo_id="allenai/OLMoE-1B-7B-0924",
        architecture="OlmoeForCausalLM",
        config=dict(
            model_type="olmoe",
            hidden_size=2048,
            num_hidden_layers=16,
            num_attention_heads=16,
            num_key_value_heads=16,
            intermediate_size=1024,
            num_experts=64,
            num_experts_per_tok=8,
            vocab_size=50304,
            max_position_embeddings=4096,
            tie_word_embeddings=False,
            pad_token_id=1,
            eos_token_id=50279,
        ),
        format="safetensors",
        stored="bfloat16",
        configured="float16",
        shard_bytes=5_000_000_000,
    ),
}
#: --tiny: the same three layouts at toy size, for the plumbing test.
TINY = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, vocab_size=512, max_position_embeddings=256)
TINY_HEADS = {"pythia-1b": 4, "olmo-1b-0724": 4, "olmoe-1b-7b": 4}
TINY_EXPERTS = dict(num_experts=4, num_experts_per_tok=2, intermediate_size=32)

#: A short probe: the study's geometry (T = 64 here, the first A at >= 20), few sequences.
PROBES = {
    "kind": "random_tokens",
    "token_range": [100, 500],
    "batch_size": 4,
    "induction": {
        "n_sequences": 4,
        "seq_len": 64,
        "seed": 42,
        "min_first_position": 20,
        "n_baseline": 20,
        "baseline_seed": 0,
    },
    "repeated": {"n_sequences": 4, "seq_len": 64, "seed": 1},
    "random": {"n_sequences": 4, "seq_len": 64, "seed": 2},
}
BRANCH = "step1000"
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
MARGIN_BYTES = 1 << 30


# ----------------------------------------------------------------------------------------------
# Checkpoint files of the published layout


def spec_of(name: str, tiny: bool) -> dict[str, Any]:
    spec = json.loads(json.dumps(SHAPES[name]))
    if tiny:
        spec["config"].update(TINY, num_attention_heads=TINY_HEADS[name])
        if "num_key_value_heads" in spec["config"]:
            spec["config"]["num_key_value_heads"] = TINY_HEADS[name]
        if "num_experts" in spec["config"]:
            spec["config"].update(TINY_EXPERTS)
        if "pad_token_id" in spec["config"]:
            spec["config"].update(eos_token_id=0, pad_token_id=1)
        spec["shard_bytes"] = 200_000 if spec["shard_bytes"] else None
    return spec


def published_tensors(spec: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the checkpoint's tensors, as the published files hold them.

    From the transformers model built on the meta device; fused expert weights
    (transformers >= 5) are split back into the per-expert tensors OLMoE publishes.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**spec["config"])
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tensors = []
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and spec["config"]["tie_word_embeddings"]:
            continue
        if name.endswith("mlp.experts.gate_up_proj"):
            experts, double, hidden = tensor.shape
            prefix = name[: -len("gate_up_proj")]
            for e in range(experts):
                tensors += [(f"{prefix}{e}.gate_proj.weight", (double // 2, hidden))]
                tensors += [(f"{prefix}{e}.up_proj.weight", (double // 2, hidden))]
        elif name.endswith("mlp.experts.down_proj"):
            experts, hidden, inner = tensor.shape
            prefix = name[: -len("down_proj")]
            tensors += [(f"{prefix}{e}.down_proj.weight", (hidden, inner)) for e in range(experts)]
        else:
            tensors.append((name, tuple(tensor.shape)))
    return tensors


def random_tensor(name: str, shape: tuple[int, ...], dtype: Any, seed: int) -> Any:
    """Norm weights 1, biases 0, everything else N(0, 0.02): a forward stays finite."""
    import torch

    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=dtype)
    if "norm" in name.rsplit(".", 2)[-2] or "layernorm" in name:
        return torch.ones(shape, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    return torch.empty(shape, dtype=torch.float32).normal_(0, 0.02, generator=generator).to(dtype)


def write_safetensors(path: Path, tensors: list[tuple[str, tuple[int, ...]]], dtype_name: str, seed: int) -> None:
    """Stream ``tensors`` into one safetensors file, generating each as it is written (bounded memory)."""
    import torch

    dtype = getattr(torch, dtype_name)
    code = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype_name]
    header, offset = {}, 0
    for name, shape in tensors:
        size = DTYPE_BYTES[dtype_name] * int(torch.Size(shape).numel())
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        for index, (name, shape) in enumerate(tensors):
            tensor = random_tensor(name, shape, dtype, seed + index)
            handle.write(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())


def write_checkpoint(spec: dict[str, Any], folder: Path, seed: int = 0) -> list[Path]:
    """config.json and the weight files of ``spec``'s published layout; returns every file written."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = {**spec["config"], "architectures": [spec["architecture"]], "torch_dtype": spec["stored"]}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tensors = published_tensors(spec)
    files = [folder / "config.json"]
    if spec["format"] == "bin":
        dtype = getattr(torch, spec["stored"])
        state = {name: random_tensor(name, shape, dtype, seed + i) for i, (name, shape) in enumerate(tensors)}
        torch.save(state, folder / "pytorch_model.bin")
        return [*files, folder / "pytorch_model.bin"]
    shards, current, size = [], [], 0
    for name, shape in tensors:
        nbytes = DTYPE_BYTES[spec["stored"]] * int(torch.Size(shape).numel())
        if current and spec["shard_bytes"] and size + nbytes > spec["shard_bytes"]:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)
    if len(shards) == 1:
        write_safetensors(folder / "model.safetensors", shards[0], spec["stored"], seed)
        return [*files, folder / "model.safetensors"]
    index = {}
    for number, shard in enumerate(shards, 1):
        shard_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(folder / shard_name, shard, spec["stored"], seed + 1000 * number)
        index.update({name: shard_name for name, _ in shard})
        files.append(folder / shard_name)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    return [*files, folder / "model.safetensors.index.json"]


def publish_by_moving(root: Path, repo_id: str, branch: str, files: list[Path]) -> dict[str, Path]:
    """Publish ``files`` as ``branch`` of a local hub folder by moving them into its blobs (no copy)."""
    from circuitsweep.checkpoints.local_hub import commit_id, hash_file, repo_folder

    folder = repo_folder(root, repo_id)
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    hashes = {path.name: hash_file(path)[0] for path in files}
    blobs = {}
    for path in files:
        blob = folder / "blobs" / hashes[path.name]
        os.replace(path, blob)
        blobs[path.name] = blob
    snapshot = folder / "snapshots" / commit_id(hashes)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, digest in hashes.items():
        (snapshot / name).symlink_to(os.path.relpath(folder / "blobs" / digest, snapshot))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / branch).write_text(commit_id(hashes))
    return blobs


# ----------------------------------------------------------------------------------------------
# The jobs, each run in its own process (``--job fetch|baseline|measure``): fetch and measure as Snakemake
# would run them; baseline apart, so that its buffers stay out of the measure job's peak RSS


def status_bytes(key: str) -> int:
    with open("/proc/self/status") as handle:
        return int(handle.read().split(key + ":")[1].split()[0]) * 1024


def job_fetch(args: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    from circuitsweep.checkpoints.snapshots import fetch_snapshot

    imported = time.perf_counter()
    fetch_snapshot(args["settings"], Path(args["output"]))
    return {"startup_s": imported - started, "fetch_s": time.perf_counter() - imported}


def plain_read_seconds(files: list[Path]) -> float:
    """Seconds to read each of ``files`` whole into a fresh buffer of its size (``readinto``), freed before the next.

    The plain read of the weights: what ``open(path, "rb").read()`` does, from
    the page cache when the files were read just before. Filling fresh memory
    (page faults) is part of it, as it is of any load.
    """
    started = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            buffer = bytearray(os.fstat(handle.fileno()).st_size)
            view, done = memoryview(buffer), 0
            while done < len(buffer) and (got := handle.readinto(view[done:])):
                done += got
            del view, buffer
    return time.perf_counter() - started


def page_cache_copy_seconds(files: list[Path]) -> float:
    """Seconds to copy ``files`` out of the page cache into one reused 16 MB buffer (no bytes kept).

    A lower bound of any read (memory bandwidth, no fresh memory); reported
    for comparison, not a baseline: a load must keep the bytes somewhere.
    """
    buffer = bytearray(16 << 20)
    view = memoryview(buffer)
    started = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(view):
                pass
    return time.perf_counter() - started


def conversion_seconds(files: list[Path], dtype_name: str) -> float:
    """Seconds to convert every stored tensor of ``files`` into fresh tensors of ``dtype_name``, all kept.

    The floor of a load into the configured dtype: per tensor
    ``torch.empty(shape, dtype).copy_(stored)`` from the memory-mapped file
    (safetensors mapped copy-on-write, ``pytorch_model.bin`` through
    ``torch.load(mmap=True, weights_only=True)``); no model, no checks, no names.
    """
    import mmap

    import torch

    from circuitsweep.checkpoints.safetensors_format import safetensors_header
    from circuitsweep.checkpoints.streaming import SAFETENSORS_DTYPES

    dtype = getattr(torch, dtype_name)
    kept = []
    started = time.perf_counter()
    for path in files:
        if path.suffix == ".safetensors":
            start, header = safetensors_header(path)
            with open(path, "rb") as handle:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
            for entry in header.values():
                stored = SAFETENSORS_DTYPES[entry["dtype"]]
                begin, end = entry["data_offsets"]
                source = torch.frombuffer(
                    mapped, dtype=stored, count=(end - begin) // stored.itemsize, offset=start + begin
                )
                target = dtype if stored.is_floating_point else stored
                kept.append(torch.empty(entry["shape"], dtype=target).copy_(source.view(entry["shape"])))
                del source
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            for source in state.values():
                target = dtype if source.dtype.is_floating_point else source.dtype
                kept.append(torch.empty(source.shape, dtype=target).copy_(source))
            del state
    seconds = time.perf_counter() - started
    del kept
    return seconds


def job_baseline(args: dict[str, Any]) -> dict[str, Any]:
    """The load's baselines, in a process of their own (their buffers stay out of the measure job's peak RSS)."""
    import torch

    from circuitsweep.checkpoints.loading import weight_files
    from circuitsweep.checkpoints.snapshots import read_snapshot

    torch.set_num_threads(args["threads"])
    files = weight_files(read_snapshot(Path(args["snapshot"])).path)
    plain_read = min(plain_read_seconds(files) for _ in range(2))  # the second from the page cache for sure
    return {
        "plain_read_s": plain_read,
        "page_cache_copy_s": min(page_cache_copy_seconds(files) for _ in range(2)),
        "convert_s": conversion_seconds(files, args["dtype"]),  # once a process, into fresh memory as the load
    }


def job_measure(args: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import torch

    from circuitsweep.checkpoints.loading import load_model, resolve_device
    from circuitsweep.checkpoints.snapshots import read_snapshot
    from circuitsweep.heads.attention_hook import register
    from circuitsweep.heads.probes import random_batch, repeated_batch, run_induction_probe
    from circuitsweep.heads.stage import RevisionJob, measure_loaded

    torch.set_num_threads(args["threads"])
    imported = time.perf_counter()
    snapshot = read_snapshot(Path(args["snapshot"]))
    job = RevisionJob.from_dict(args["job"])
    device = resolve_device(job.device)
    load_started = time.perf_counter()
    model = load_model(snapshot.path, job.architecture, job.dtype, device, register())
    load_s = time.perf_counter() - load_started
    load_peak = status_bytes("VmHWM")  # before the measurement adds its own buffers (e.g. an fp32 LM head)
    # tied weights (OLMo's embedding and LM head) are one tensor: count each storage once
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in model.state_dict().values()}
    weights = sum(storages.values())
    measure_started = time.perf_counter()
    out = Path(args["out"])
    measure_loaded(model, snapshot, job, out / "heads.safetensors", out / "heads.parquet", progress=False)
    measure_s = time.perf_counter() - measure_started
    probes, size = job.probes, job.probes.batch_size
    low_high = probes.token_range
    batches = [
        run_induction_probe(probes, None).tokens,
        repeated_batch(probes.repeated.n_sequences, probes.repeated.seq_len, low_high, probes.repeated.seed),
        random_batch(probes.random.n_sequences, probes.random.seq_len, low_high, probes.random.seed),
    ]
    forward_started = time.perf_counter()
    with torch.inference_mode():
        for tokens in batches:
            for start in range(0, len(tokens), size):
                model(input_ids=tokens[start : start + size].to(device), use_cache=False)
    forward_s = time.perf_counter() - forward_started
    return {
        "startup_s": imported - started,
        "load_s": load_s,
        "measure_s": measure_s,
        "forward_s": forward_s,
        "peak_rss_bytes": status_bytes("VmHWM"),
        "load_peak_rss_bytes": load_peak,
        "weight_bytes": weights,
    }


JOBS = {"fetch": job_fetch, "baseline": job_baseline, "measure": job_measure}


def run_job(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its wall seconds are added as ``wall_s``."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--job", kind, json.dumps(args)], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{kind} job failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": wall}


# ----------------------------------------------------------------------------------------------
# Baselines and one model


def copy_and_hash_seconds(blobs: list[Path], scratch: Path) -> float:
    """Plain copy of ``blobs`` into ``scratch`` and one ``sha256sum`` pass over the copies (then deleted)."""
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    copies = []
    for blob in blobs:
        shutil.copyfile(blob, scratch / blob.name)
        copies.append(scratch / blob.name)
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", *map(str, copies)], check=True, capture_output=True)
    else:  # pragma: no cover - every Linux has coreutils
        for path in copies:
            hashlib.sha256(path.read_bytes()).hexdigest()
    seconds = time.perf_counter() - started
    shutil.rmtree(scratch)
    return seconds


def needed_bytes(spec: dict[str, Any]) -> int:
    """Disk one model needs at once: its files in the hub folder and in the fetched snapshot, plus a margin."""
    import torch

    params = sum(int(torch.Size(shape).numel()) for _, shape in published_tensors(spec))
    return 2 * params * DTYPE_BYTES[spec["stored"]] + MARGIN_BYTES


def run_model(name: str, spec: dict[str, Any], workdir: Path, threads: int) -> dict[str, Any]:
    from hubserver import HubServer

    root, source = workdir / "hub", workdir / "build"
    built = time.perf_counter()
    files = write_checkpoint(spec, source)
    blobs = publish_by_moving(root, spec["repo_id"], BRANCH, files)
    build_s = time.perf_counter() - built
    file_bytes = sum(blob.stat().st_size for blob in blobs.values())
    try:
        baseline_fetch = copy_and_hash_seconds(list(blobs.values()), workdir / "copy")
        with HubServer(root) as server:
            commit = server.store.resolve(spec["repo_id"], BRANCH)
            server.store.files(spec["repo_id"], commit)  # the server hashes its blobs once, before timing
            settings = {
                "model": name,
                "revision": BRANCH,
                "source": {"type": "hub", "repo_id": spec["repo_id"], "endpoint": server.endpoint},
            }
            snapshot = workdir / "snapshot"
            fetch = run_job("fetch", {"settings": settings, "output": str(snapshot)})
        shutil.rmtree(root)  # the fetched copy is what the measure job reads
        job = {
            "model": name,
            "revision": BRANCH,
            "step": 1000,
            "tokens": 0,
            "architecture": spec["architecture"],
            "dtype": spec["configured"],
            "first_token": {"policy": "none"},
            "device": "cpu",
            "probes": PROBES,
        }
        # twice, each in a fresh process: the first can meet the fetched files still being written back to disk
        runs = [
            run_job("baseline", {"snapshot": str(snapshot), "dtype": spec["configured"], "threads": threads})
            for _ in range(2)
        ]
        baseline_load = {key: min(run[key] for run in runs) for key in runs[0]}
        (workdir / "out").mkdir(exist_ok=True)
        measure = run_job(
            "measure", {"snapshot": str(snapshot), "job": job, "out": str(workdir / "out"), "threads": threads}
        )
    finally:
        for path in (root, source, workdir / "snapshot", workdir / "copy", workdir / "out"):
            shutil.rmtree(path, ignore_errors=True)
    return {
        "model": name,
        "file_bytes": file_bytes,
        "build_s": build_s,
        "fetch": fetch,
        "measure": measure,
        "baseline_fetch_s": baseline_fetch,
        "baseline_load": baseline_load,
        "fetch_ratio": fetch["fetch_s"] / baseline_fetch,
        "load_ratio": measure["load_s"] / baseline_load["plain_read_s"],
        "load_vs_conversion": measure["load_s"] / baseline_load["convert_s"],
        "peak_rss_ratio": measure["peak_rss_bytes"] / measure["weight_bytes"],
        "measure_ratio": measure["measure_s"] / measure["forward_s"],
    }


def report(result: dict[str, Any]) -> str:
    fetch, measure, load = result["fetch"], result["measure"], result["baseline_load"]
    return (
        f"{result['model']}: fetch_ratio={result['fetch_ratio']:.2f} load_ratio={result['load_ratio']:.2f} "
        f"peak_rss_ratio={result['peak_rss_ratio']:.2f} measure_ratio={result['measure_ratio']:.2f}\n"
        f"  fetch job {fetch['wall_s']:.1f} s = start-up {fetch['startup_s']:.1f} + fetch & verify "
        f"{fetch['fetch_s']:.1f} (baseline copy + sha256sum {result['baseline_fetch_s']:.1f} s)\n"
        f"  measure job {measure['wall_s']:.1f} s = start-up {measure['startup_s']:.1f} + load {measure['load_s']:.2f} "
        f"+ measure {measure['measure_s']:.1f} (baseline SDPA forward {measure['forward_s']:.1f} s) "
        "+ forward and exit\n"
        f"  load {measure['load_s']:.2f} s against: plain read {load['plain_read_s']:.2f} s (fresh buffer), "
        f"conversion floor {load['convert_s']:.2f} s (load/floor {result['load_vs_conversion']:.2f}), "
        f"page-cache copy {load['page_cache_copy_s']:.2f} s (reused 16 MB buffer)\n"
        f"  files {result['file_bytes'] / 1e9:.2f} GB ({result['build_s']:.0f} s to write); peak RSS "
        f"{measure['peak_rss_bytes'] / 1e9:.2f} GB ({measure['load_peak_rss_bytes'] / 1e9:.2f} GB up to the end of "
        f"the load) for {measure['weight_bytes'] / 1e9:.2f} GB of weights"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Pythia-1B shape only")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes of the same layouts (plumbing test)")
    parser.add_argument("--models", help="comma-separated subset of " + ",".join(SHAPES))
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where the files go (default: TMPDIR)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the measure job")
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("job_args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        result = JOBS[args.job](json.loads(args.job_args))
        print(json.dumps(result))
        return 0
    names = args.models.split(",") if args.models else (["pythia-1b"] if args.quick else list(SHAPES))
    specs = {name: spec_of(name, args.tiny) for name in names}
    need = max(needed_bytes(spec) for spec in specs.values())
    free = shutil.disk_usage(args.workdir).free
    if free < need:
        message = f"{args.workdir} has {free / 1e9:.1f} GB free; this run needs {need / 1e9:.1f} GB"
        print(f"real_scale: refusing to start: {message} (--workdir elsewhere?)", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="real-scale-", dir=args.workdir) as workdir:
        for name, spec in specs.items():
            print(f"{name}: building, serving, fetching, loading and measuring ...", flush=True)
            results.append(run_model(name, spec, Path(workdir), args.threads))
            print(report(results[-1]), flush=True)
    ratios = ("fetch_ratio", "load_ratio", "peak_rss_ratio", "measure_ratio")
    worst = {key: max(result[key] for result in results) for key in ratios}
    print(" ".join(f"{key}={value:.2f}" for key, value in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
