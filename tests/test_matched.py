"""Matched random heads: one draw rule and one note rule for the per-revision and the final-revision ablation."""

from __future__ import annotations

from circuitsweep.heads.matched import by_layer, draw_note, matched_draws


def test_draws_keep_the_picks_count_per_layer_and_continue_one_random_state():
    """Each draw takes as many of a layer's other heads as it has picks, never a pick, groups in their given
    layer order, every draw continuing the same RandomState (so the draws differ and rerun identically)."""
    groups = [(3, [0, 1]), (1, [2])]
    draws = matched_draws(groups, 8, 3, 123)
    assert [[layer for layer, _ in d] for d in draws] == [[3, 3, 1]] * 3
    assert all(not {(3, 0), (3, 1), (1, 2)} & set(d) for d in draws)
    assert draws == matched_draws(groups, 8, 3, 123) and len({tuple(d) for d in draws}) > 1


def test_a_circuit_sorted_by_layer_is_drawn_layers_ascending():
    """The per-revision circuit (sorted by layer and head) groups into ascending layers, heads in order."""
    assert by_layer([(1, 0), (1, 3), (4, 2)]) == [(1, [0, 3]), (4, [2])]
    assert by_layer([(4, 2), (1, 0)]) == [(4, [2]), (1, [0])]


def test_notes_say_why_a_draw_is_no_random_control():
    """Room to choose: no note. Exactly as many others as picks: every draw is the same heads. Fewer: the draw is
    short by the missing count (and forced). None left: no control."""
    assert draw_note([(1, [0, 1])], 8, [(1, 2), (1, 5)]) is None
    half = [(1, [0, 1, 2, 3])]
    assert draw_note(half, 8, [(1, 4), (1, 5), (1, 6), (1, 7)]) == (
        "layers [1] leave no choice: every draw is the same heads"
    )
    seven = [(1, [0, 1, 2, 3, 4, 5, 6])]
    assert draw_note(seven, 8, [(1, 7)]) == (
        "layers [1] have fewer other heads than picks: 6 heads short; layers [1] leave no choice: every draw is the"
        " same heads"
    )
    assert draw_note([(1, [0, 1, 2, 3]), (2, [0])], 8, [(1, 4), (1, 5), (1, 6), (1, 7), (2, 3)]) is None
    assert draw_note([(1, list(range(8)))], 8, []).startswith("no control: the picks fill their layers [1]")
