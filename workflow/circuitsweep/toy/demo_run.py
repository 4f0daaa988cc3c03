"""A small training run saved the way HF Trainer saves one, to try a ``run_dir`` sweep on.

A 2-layer Llama-class model (hidden size 64, 4 heads, 28-token vocabulary) is
trained with AdamW on the toy suite's copied-span data, and at each step of
``steps`` the run is saved as ``<folder>/checkpoint-<step>/``: ``config.json``,
``model.safetensors``, and, as a Trainer writes them, ``optimizer.pt`` and
``trainer_state.json`` (training state the sweep does not read). With the
default steps its induction heads form within the run (at about step300), so
the sweep of it has an onset to find.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from circuitsweep.config.patterns import pattern_regex
from circuitsweep.errors import ConfigError
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.names import unsafe_reason
from circuitsweep.toy.data import synthetic_batch
from circuitsweep.toy.spec import ToySpec
from circuitsweep.toy.train import save_quietly, toy_optimizer, warm_up

#: The data :func:`toy.data.synthetic_batch` draws for the demo and its optimizer's settings: the toy suite's
#: copied spans on 26 content ids, 64 sequences of 64 tokens a step, learning rate 2e-3 after 50 warmup steps
#: (the model fields are unused: the demo builds a Llama of its own).
DEMO_DATA = ToySpec(architecture="GPTNeoXForCausalLM", vocab_size=28)

#: The most optimizer steps the demo trains.
MAX_DEMO_STEPS = 10_000


def check_demo_arguments(folder: Path, steps: Sequence[int], pattern: str) -> None:
    """Refuse, naming the argument, steps outside 0 .. :data:`MAX_DEMO_STEPS`, a pattern that a
    ``run_dir`` source cannot read back (``{stp}``, ``{step:s}``), and a run folder that is a file."""
    if not steps or min(steps) < 0 or max(steps) > MAX_DEMO_STEPS:
        raise ConfigError(f"--steps: {list(steps)}: each step must lie in 0 .. {MAX_DEMO_STEPS}")
    checkpoint_names(steps, pattern)
    if Path(folder).exists() and not Path(folder).is_dir():
        raise ConfigError(f"{folder} is a file, not a run folder")


def checkpoint_names(steps: Sequence[int], pattern: str) -> list[str]:
    """The folder name of each step: one folder per step, directly inside the run folder.

    Raises :class:`ConfigError` naming ``--pattern`` unless it has exactly one ``{step}``
    field (as a run_dir source's ``pattern``) and formats every step to a single safe name.
    """
    try:
        pattern_regex(pattern)
    except ConfigError:
        raise ConfigError(
            f"--pattern {pattern!r} must hold exactly one {{step}} field (optionally {{step:07d}}-style), "
            "so that each step gets its own folder"
        ) from None
    names = []
    for step in steps:
        name = pattern.format(step=step)
        if (reason := unsafe_reason(name)) is not None:
            raise ConfigError(
                f"--pattern {pattern!r} names step {step}'s folder {name!r}, which is not one folder inside "
                f"the run folder ({reason})"
            )
        names.append(name)
    return names


def save_demo_run(
    folder: Path, steps: Sequence[int], pattern: str = "checkpoint-{step}", seed: int = 0, force: bool = False
) -> list[Path]:
    """Train the demo model and save a checkpoint folder at each of ``steps`` (ascending, >= 0); returns them.

    Refuses (:class:`ConfigError`, before training) a ``pattern`` that is not one folder per step
    inside ``folder`` (:func:`checkpoint_names`), and, unless ``force``, a checkpoint folder that
    already exists. Each folder appears complete or not at all.
    """
    check_demo_arguments(folder, steps, pattern)
    steps = sorted(set(steps))
    names = checkpoint_names(steps, pattern)
    existing = [name for name in names if os.path.lexists(Path(folder) / name)]
    if existing and not force:
        raise ConfigError(
            f"{Path(folder) / existing[0]} exists ({len(existing)} of the checkpoint folders to save do): "
            "not replaced (pass --force to replace them)"
        )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=DEMO_DATA.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    optimizer = toy_optimizer(model, DEMO_DATA)
    generator = torch.Generator().manual_seed(seed)
    saved = []
    step = 0
    for target, name in zip(steps, names, strict=True):
        while step < target:
            warm_up(optimizer, DEMO_DATA, step)
            tokens = synthetic_batch(DEMO_DATA, generator)
            loss = model(input_ids=tokens, labels=tokens).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
        out = Path(folder) / name
        partial = Path(folder) / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        save_quietly(model, partial)
        torch.save(optimizer.state_dict(), partial / "optimizer.pt")
        atomic_write_text(partial / "trainer_state.json", json.dumps({"global_step": step}) + "\n")
        if os.path.lexists(out):
            shutil.rmtree(out) if out.is_dir() and not out.is_symlink() else out.unlink()
        partial.rename(out)
        saved.append(out)
    return saved
