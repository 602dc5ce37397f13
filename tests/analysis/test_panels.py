"""analysis/panels.py: the per-condition panel grid the learning curves and distributions
share: how many conditions fit side by side, how further ones wrap, what a figure says when
it left some out."""

import pandas as pd
from matplotlib.figure import Figure

from analysis.panels import (
    PANEL_COLUMNS,
    PANELS_MAX,
    condition_groups,
    condition_panels,
    dropped_note,
)


def test_six_conditions_of_three_rows_wrap_after_four_columns():
    fig = Figure()

    panels = condition_panels(fig, 6, rows=3)

    assert PANEL_COLUMNS == 4
    assert [len(axes) for axes in panels] == [3] * 6
    # 4 columns x 2 blocks of 3 rows: 24 axes, the 18 used visible.
    assert len(fig.axes) == 24
    assert sum(ax.get_visible() for ax in fig.axes) == 18
    spans = [
        (axes[0].get_subplotspec().rowspan.start, axes[0].get_subplotspec().colspan.start)
        for axes in panels
    ]
    assert spans == [(0, 0), (0, 1), (0, 2), (0, 3), (3, 0), (3, 1)]
    # A condition's rows share its x axis; a metric's row its y axis across conditions.
    assert panels[0][1].get_shared_x_axes().joined(panels[0][0], panels[0][1])
    assert panels[5][2].get_shared_y_axes().joined(panels[0][2], panels[5][2])


def test_unshared_panels_keep_their_own_y_axis():
    fig = Figure()

    panels = condition_panels(fig, 2, rows=2, share_y=False)

    assert not panels[1][0].get_shared_y_axes().joined(panels[0][0], panels[1][0])


def test_at_most_panels_max_conditions_in_order_and_the_note_saying_so():
    runs = pd.DataFrame({"peak_lr": [0.01 * (20 - i) for i in range(20)], "seed": 0})

    groups = condition_groups(runs, ["peak_lr"])

    assert PANELS_MAX == 16
    assert [key for key, _ in groups] == [(0.01 * i,) for i in range(1, 17)]
    assert dropped_note(16) == ""
    assert dropped_note(20) == "; the first 16 of 20 conditions (the tables give every one)"
