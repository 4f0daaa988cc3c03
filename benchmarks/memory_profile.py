"""Peak memory of the measurement engine, pass by pass, on a model shape of ``heads_speed.py``.

Runs :func:`circuitsweep.heads.measure.head_statistics` once (ours, float32, one
thread) on a random-initialised model of the named shape and prints, for every
forward pass (the verification pass, each induction batch, marked ``+spectral``
where it holds sequences of the spectral phase, each repeated and random
batch):

- ``held MB``: bytes of tensor storage the measurement holds when the pass
  starts (allocated by torch operators since the measurement began, still alive);
- ``tensor peak MB``: the most such bytes alive at once during the pass;
- ``RSS peak MB``: the process's resident high-water mark during the pass
  (reset at the pass's start) minus its resident size when the measurement
  began (the heap trimmed first), allocator retention included. Indicative
  only: the counter's own bookkeeping and the allocator's history move it by
  tens of MB from run to run; ``heads_speed.py`` measures the resident peak
  without the counter.

Tensor bytes are counted by :class:`circuitsweep.heads.tensor_bytes.TensorBytes`
of this checkout, loaded from its file, while the engine is whichever
``circuitsweep`` is importable: ``PYTHONPATH=<older tree>/workflow python
benchmarks/memory_profile.py ...`` profiles an older engine with the same counter.

Usage::

    python benchmarks/memory_profile.py --model pythia-70m                  # --quick's probe (~20 s)
    python benchmarks/memory_profile.py --model olmo-1b --layers 16 --sequences 32,2,2 --spectral 16
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import heads_speed as hs  # noqa: E402 - the benchmark beside this script

COUNTER = HERE.parent / "workflow" / "circuitsweep" / "heads" / "tensor_bytes.py"
MB = 2**20


def _counter_class():
    """This checkout's ``TensorBytes``, whatever ``circuitsweep`` is importable."""
    spec = importlib.util.spec_from_file_location("_tensor_bytes", COUNTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TensorBytes


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


@dataclass
class Pass:
    kind: str
    batch: int
    seq_len: int
    held: int
    tensor_peak: int = 0
    rss_peak: int = 0


def pass_kinds(probes: dict[str, Any], spectral: int) -> list[str]:
    """The kind of each forward pass in the engine's order: verification, induction, repeated, random."""
    size = probes["batch_size"]
    kinds = ["verify"]
    for start in range(0, probes["induction"]["n_sequences"], size):
        kinds.append("induction+spectral" if start < spectral else "induction")
    kinds += ["repeated"] * -(-probes["repeated"]["n_sequences"] // size)
    kinds += ["random"] * -(-probes["random"]["n_sequences"] // size)
    return kinds


def profile(model_name: str, layers: int, probes: dict[str, Any]) -> list[Pass]:
    """Every pass of one measurement of a random model of ``model_name``'s shape."""
    import torch

    from circuitsweep.heads.attention_hook import register
    from circuitsweep.heads.measure import ProbeSettings, head_statistics

    torch.set_num_threads(1)
    settings = ProbeSettings.from_dict(probes)
    spectral = getattr(settings, "spectral_sequences", 0)  # 0: an engine before the spectral phase
    kinds = pass_kinds(probes, spectral)
    model = hs.build_model(model_name, layers, register())
    # what heads_speed.py's worker runs before measuring (the allocator's state, and so the RSS, depends on it)
    with torch.no_grad():
        model.base_model(torch.randint(*hs.TOKEN_RANGE, (1, 32)))
    hs.matmul_throughput(torch.device("cpu"), torch.float32, 1.0)
    gc.collect()
    passes: list[Pass] = []
    hs._trim_heap()
    rss_start = _status_kb("VmRSS") * 1024
    with _counter_class()() as counted:

        def close() -> None:
            if passes:
                passes[-1].tensor_peak = counted.peak
                passes[-1].rss_peak = _status_kb("VmHWM") * 1024 - rss_start

        def start(_module, args, kwargs) -> None:  # noqa: ANN001
            close()
            ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
            kind = kinds[len(passes)] if len(passes) < len(kinds) else "?"
            hs._reset_peak_rss()
            counted.reset_peak()
            passes.append(Pass(kind, *ids.shape, held=counted.live))

        handle = model.base_model.register_forward_pre_hook(start, with_kwargs=True)
        hs._reset_peak_rss()
        try:
            head_statistics(model, settings, None, torch.device("cpu"), progress=False)
        finally:
            handle.remove()
        close()
    return passes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pythia-70m", choices=list(hs.MODELS))
    parser.add_argument("--layers", type=int, help="decoder layers (default: --quick's: all, OLMo 2)")
    parser.add_argument(
        "--sequences", metavar="I,R,S", help="induction, repeated, random sequences (default: --quick's)"
    )
    parser.add_argument("--spectral", type=int, help="spectral sequences (default: the study's 500, capped by I)")
    parser.add_argument("--json", help="also write the passes to this JSON file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    mode = hs.MODES["quick"]
    olmo = args.model == "olmo-1b"
    sizes = {**mode, **mode.get("olmo", {})} if olmo else dict(mode)
    if args.sequences:
        sizes.update(zip(("induction", "repeated", "random"), map(int, args.sequences.split(",")), strict=True))
    probes = hs.probe_dict(sizes)
    if args.spectral is not None:
        probes["spectral"] = {"n_sequences": args.spectral}
    layers = args.layers or (mode["olmo_layers"] if olmo else hs.MODELS[args.model]["layers"])
    import circuitsweep

    print(f"memory_profile: {args.model} ({layers} layers), engine {Path(circuitsweep.__file__).parents[1]}")
    passes = profile(args.model, layers, probes)
    print(f"{'pass':<20} {'batch':>9} {'held MB':>9} {'tensor peak MB':>15} {'RSS peak MB':>12}")
    for p in passes:
        print(
            f"{p.kind:<20} {f'{p.batch} x {p.seq_len}':>9} {p.held / MB:>9.1f} {p.tensor_peak / MB:>15.1f} "
            f"{p.rss_peak / MB:>12.1f}"
        )
    worst = max(passes, key=lambda p: p.tensor_peak)
    print(
        f"peak: tensors {worst.tensor_peak / MB:.1f} MB ({worst.kind}), "
        f"RSS {max(p.rss_peak for p in passes) / MB:.1f} MB; most held between passes "
        f"{max(p.held for p in passes) / MB:.1f} MB"
    )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(p) for p in passes], indent=1) + os.linesep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
