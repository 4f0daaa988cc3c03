"""Figures of the run's tables (matplotlib, written atomically as PNG or SVG by the path's suffix): one module per
figure, the axes and colours they share in :mod:`.axes`."""

import matplotlib

matplotlib.use("Agg")

from circuitsweep.outputs.plots.axes import CLASS_COLOURS, token_ticks  # noqa: E402
from circuitsweep.outputs.plots.emergence import (  # noqa: E402
    MILESTONE_MARKS,
    MilestoneMark,
    curve_brackets,
    draw_group_bands,
    draw_milestone_brackets,
    emergence_figure,
    emergence_plot,
    unreached_milestones,
)
from circuitsweep.outputs.plots.heads import head_trajectories, heatmap_figure, layer_heatmap, trajectory_figure  # noqa: E402
from circuitsweep.outputs.plots.primitives import (  # noqa: E402
    DEMONSTRATION_COLOUR,
    demonstration_note,
    primitive_gap_figure,
    primitive_gap_plot,
    primitive_scaling_figure,
    primitive_scaling_plot,
)
from circuitsweep.outputs.plots.spectral import spectral_figure, spectral_plot  # noqa: E402

__all__ = [
    "CLASS_COLOURS",
    "DEMONSTRATION_COLOUR",
    "MILESTONE_MARKS",
    "MilestoneMark",
    "curve_brackets",
    "demonstration_note",
    "draw_group_bands",
    "draw_milestone_brackets",
    "emergence_figure",
    "emergence_plot",
    "head_trajectories",
    "heatmap_figure",
    "layer_heatmap",
    "primitive_gap_figure",
    "primitive_gap_plot",
    "primitive_scaling_figure",
    "primitive_scaling_plot",
    "spectral_figure",
    "spectral_plot",
    "token_ticks",
    "trajectory_figure",
    "unreached_milestones",
]
