"""analysis/sections.py: which sections a report gets, by what the study swept (each a list of
blocks: headings and text as strings, tables as frames, figures as FigureBlocks). The blocks'
content as the reader sees it: tests/analysis/test_report.py."""

import numpy as np
from factories import arm, curve_runs, runs_frame, sweep

from analysis import sections
from analysis.policy import Policy
from analysis.render import FigureBlock


def headings(blocks) -> list[str]:
    return [b for b in blocks if isinstance(b, str) and b.startswith("## ")]


def figures(blocks) -> list[str]:
    return [b.file for b in blocks if isinstance(b, FigureBlock)]


def test_an_explore_grid_gets_no_comparison_sections():
    runs = sweep(lambda f, lr, s: 0.98 + 0.001 * s)

    assert sections.comparison_sections(runs, Policy(), "explore") == []


def test_each_swept_axis_gets_its_section():
    knee = arm("knee", 0.98, epochs=10, decay="linear") + arm(
        "knee", 0.98, epochs=20, decay="cosine"
    )
    knee += arm("knee", 0.98, epochs=10, decay="cosine") + arm(
        "knee", 0.98, epochs=20, decay="linear"
    )
    cosine = arm("cosine", 0.97, epochs=10) + arm("cosine", 0.97, epochs=20)

    blocks = sections.comparison_sections(
        runs_frame(knee + cosine), Policy(margin=0.003), "explore"
    )

    assert headings(blocks) == [
        "## Knee against baseline schedules",
        "## Training budget",
        "## Decay shape of the exploit phase",
    ]
    assert any("above -0.30 points, *falls short*" in b for b in blocks if isinstance(b, str))


def test_baselines_without_knee_at_the_fraction_are_shown_side_by_side():
    runs = runs_frame(arm("knee", 0.98, explore_fraction=0.0) + arm("cosine", 0.97))

    blocks = sections.comparison_sections(runs, Policy(), "explore")

    assert headings(blocks) == ["## Baseline schedules"]
    assert "(no Knee trial at 50% explore to compare them with)" in blocks[1]


def test_sharpness_sections_need_sharpness_and_draw_the_explore_curve_only_for_a_grid():
    runs = sweep(lambda f, lr, s: 0.98 + 0.001 * s)

    grid = sections.sharpness_sections(runs, 0.5, explore=True)
    search = sections.sharpness_sections(runs, 0.5, explore=False)

    assert headings(grid) == ["## Sharpness against explore fraction", "## Sharpness and accuracy"]
    assert figures(grid) == ["sharpness_vs_explore.png", "sharpness_vs_accuracy.png"]
    assert headings(search) == ["## Sharpness and accuracy"]
    assert sections.sharpness_sections(runs.assign(sharpness=np.nan), 0.5, explore=True) == []
    assert sections.sharpness_sections(runs.drop(columns="sharpness"), 0.5, explore=True) == []


def test_learning_curves_need_two_epochs_of_history():
    runs, history = curve_runs()

    with_curves = sections.curve_sections(runs, history, Policy())
    one_epoch = sections.curve_sections(runs, history[history["epoch"] == 1], Policy())
    none = sections.curve_sections(runs, None, Policy())

    assert figures(with_curves) == ["learning_curves.png", "distributions.png"]
    assert figures(one_epoch) == figures(none) == ["distributions.png"]
