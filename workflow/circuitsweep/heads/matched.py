"""Matched random heads (docs/methods.md): the control of an ablated head set, one rule for every ablation.

A matched draw takes, per layer of the picks, as many of that layer's other
heads as the picks hold there, so that the control ablates the same amount of
each layer. Both the per-revision ablation (the circuit's control) and the
final-revision ablation (every condition family's control) draw here, and say
here why a draw is no genuine random control: it is empty, short, or forced
(the layers leave no choice, so every draw is the same heads and a spread of 0
over the draws is no agreement). No torch: the draws are indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Head = tuple[int, int]
Groups = Sequence[tuple[int, Sequence[int]]]


def heads_label(heads: Sequence[Head]) -> str:
    """``L1H0,L1H3``: heads as the ablation tables and messages name them."""
    return ",".join(f"L{layer}H{head}" for layer, head in heads)


def by_layer(heads: Sequence[Head]) -> list[tuple[int, list[int]]]:
    """Heads grouped by layer, layers in order of first appearance, heads in their given order."""
    groups: dict[int, list[int]] = {}
    for layer, head in heads:
        groups.setdefault(layer, []).append(head)
    return list(groups.items())


def matched_draws(groups: Groups, n_heads: int, draws: int, seed: int) -> list[list[Head]]:
    """``draws`` matched random head sets: per (layer, picks) group in the given order, as many of the layer's
    other heads (``rng.choice(others, size, replace=False)``, sorted), from one ``RandomState(seed)`` that
    serves every draw in turn.

    A layer with fewer other heads than picks gives all it has (the study's ``min``).
    """
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(draws):
        chosen: list[Head] = []
        for layer, picks in groups:
            others = [h for h in range(n_heads) if h not in picks]
            size = min(len(picks), len(others))
            chosen += [(layer, int(h)) for h in sorted(rng.choice(others, size=size, replace=False).tolist())]
        out.append(chosen)
    return out


def draw_note(groups: Groups, n_heads: int, drawn: Sequence[Head]) -> str | None:
    """Why the matched draw ``drawn`` of the picks ``groups`` is no genuine random control, else None.

    Empty: the picks fill their layers (no control). Short: some layer has fewer other heads than picks.
    Forced: every layer has at most as many other heads as picks, so every draw is the same heads.
    """
    layers = [layer for layer, _ in groups]
    if not drawn:
        return f"no control: the picks fill their layers {layers}, no other head is left to draw"
    notes = []
    short = [layer for layer, picks in groups if n_heads - len(picks) < len(picks)]
    if short:
        missing = sum(len(picks) for _, picks in groups) - len(drawn)
        notes.append(f"layers {short} have fewer other heads than picks: {missing} heads short")
    if all(n_heads - len(picks) <= len(picks) for _, picks in groups):
        notes.append(f"layers {layers} leave no choice: every draw is the same heads")
    return "; ".join(notes) or None
