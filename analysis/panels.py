"""A grid of panels, one per condition (peak LR, ...), shared by the figures drawn condition by
condition (learning curves, distributions): how many fit, how they wrap, what is left out."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

PANEL_COLUMNS = 4  # conditions side by side; more wrap onto further rows of panels
PANELS_MAX = 16  # conditions drawn at most (the tables give every one)


def condition_panels(fig: Figure, count: int, rows: int, share_y: bool = True) -> list[list]:
    """``rows`` axes (one per metric, top to bottom) for each of ``count`` conditions, at most
    ``PANEL_COLUMNS`` conditions side by side and further ones wrapped below. A condition's axes
    share their x axis (epochs, or explore fractions), a metric's axes their y axis unless not
    ``share_y``, so panels compare at a glance; tick labels only where the axes are not
    shared."""
    columns = max(1, min(count, PANEL_COLUMNS))
    blocks = max(1, -(-count // columns))
    grid = fig.subplots(rows * blocks, columns, squeeze=False)
    panels = [
        [grid[(c // columns) * rows + r][c % columns] for r in range(rows)] for c in range(count)
    ]
    used = {id(ax) for axes in panels for ax in axes}
    for ax in grid.flat:
        ax.set_visible(id(ax) in used)
    for c, axes in enumerate(panels):
        for r, ax in enumerate(axes):
            if r:
                ax.sharex(axes[0])
            if r < rows - 1:
                ax.tick_params(labelbottom=False)
            if c and share_y:
                ax.sharey(panels[0][r])
            if c % columns and share_y:
                ax.tick_params(labelleft=False)
    return panels


def condition_groups(runs: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """The conditions of ``runs`` (Knee trials) in order, each ``(values of keys, its trials)``,
    at most ``PANELS_MAX`` of them."""
    groups = list(runs.groupby(keys, sort=True, dropna=False))
    return groups[:PANELS_MAX]


def dropped_note(total: int) -> str:
    """What a figure of per-condition panels says when it drew only the first ``PANELS_MAX``."""
    if total <= PANELS_MAX:
        return ""
    return f"; the first {PANELS_MAX} of {total} conditions (the tables give every one)"
