"""`knee-study report` on experiments written with the MLflow client: the verdict printed, the
files written, summary.csv checked against numbers worked out by hand, every figure a real PNG."""

import statistics

import pandas as pd
import pytest
from fake_studies import grid, log_study
from matplotlib.image import imread

from study.cli import EXIT_BAD_INPUT, main

FIGURES = (
    "accuracy_vs_explore.png",
    "sharpness_vs_explore.png",
    "sharpness_vs_accuracy.png",
    "accuracy_heatmap.png",
)
TEST_IMAGES = 540  # accuracies are k / 540, as on the digits test split


def accuracy(fraction: float, peak_lr: float, seed: int) -> float:
    """A plateau from 50% explore on, one image per seed of spread, 0% two images worse, and 50%
    one image short of 100% at seed 1: per seed, 100% minus 50% is 0, 1, 0, 0 images."""
    correct = 530 + seed - (2 if fraction == 0 else 0) - (peak_lr == 0.1)
    correct -= fraction == 0.5 and seed == 1
    return correct / TEST_IMAGES


@pytest.fixture(scope="module")
def plateau_study(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05, 0.1], seed=[0, 1, 2, 3])
    for t in trials:
        t.update(schedule="knee", epochs=20)
        t["test_acc"] = accuracy(t["explore_fraction"], t["peak_lr"], t["seed"])
        t["sharpness"] = 1.0 + 2.0 * t["explore_fraction"] + 0.1 * t["seed"]
    log_study(uri, "plateau", trials)
    return uri


def report(uri: str, out, *extra: str) -> int:
    return main(
        ["report", "--experiment", "plateau", "--tracking-uri", uri, "--out", str(out), *extra]
    )


def test_report_prints_the_verdict_and_writes_every_file(plateau_study, tmp_path, capsys):
    assert report(plateau_study, tmp_path) == 0

    out = capsys.readouterr().out
    assert "verdict: ROBUST: 50% explore is robust" in out
    assert str(tmp_path / "report.html") in out
    for name in ("report.md", "report.html", "summary.csv", "runs.csv", *FIGURES):
        assert (tmp_path / name).is_file(), name


def test_summary_csv_matches_hand_computed_values(plateau_study, tmp_path):
    report(plateau_study, tmp_path)

    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["peak_lr", "explore_fraction"])

    assert len(summary) == 6
    for (peak_lr, fraction), row in summary.iterrows():
        values = [accuracy(fraction, peak_lr, seed) for seed in range(4)]
        sharp = [1.0 + 2.0 * fraction + 0.1 * seed for seed in range(4)]
        assert row["test_acc_n"] == 4
        assert row["test_acc_mean"] == pytest.approx(statistics.mean(values))
        assert row["test_acc_std"] == pytest.approx(statistics.stdev(values))
        # t(0.975, df=3) = 3.182446
        half = 3.182446 * statistics.stdev(values) / 2
        assert row["test_acc_ci_high"] == pytest.approx(statistics.mean(values) + half, rel=1e-6)
        assert row["test_acc_best_seed"] == 3
        assert row["test_acc_worst_seed"] == 0
        assert row["sharpness_mean"] == pytest.approx(statistics.mean(sharp))
        assert row["test_acc_diverged"] == 0


def test_figures_are_real_pngs(plateau_study, tmp_path):
    report(plateau_study, tmp_path)

    for name in FIGURES:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        height, width, _ = imread(tmp_path / name).shape
        assert height > 200, name
        assert width > 400, name


def test_html_is_self_contained_and_md_links_the_figures(plateau_study, tmp_path):
    report(plateau_study, tmp_path)

    html = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "report.md").read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert 'src="accuracy' not in html
    for name in FIGURES:
        assert f"]({name})" in markdown
    assert "**Verdict: robust.**" in markdown
    assert "one of 540 test images" in markdown  # the resolution the verdict had


# The gap 100% - 50% in images per seed is 0, 1, 0, 0: mean 1/2160, sd 2/2160, and its 90%
# paired t interval is mean +- t(0.95, df=3) 2.353363 * sd / 2 = [-0.000627, 0.001553].
@pytest.mark.parametrize(("margin", "status"), [("0.002", "ROBUST"), ("0.001", "INCONCLUSIVE")])
def test_margin_against_the_paired_interval(plateau_study, tmp_path, capsys, margin, status):
    assert report(plateau_study, tmp_path, "--margin", margin) == 0

    assert f"verdict: {status}:" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "runs.csv")  # the verdict's inputs, as the report saw them
    assert len(table) == 24
    markdown = (tmp_path / "report.md").read_text()
    assert "-0.063 to 0.155" in markdown  # the interval, in points


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--experiment", "nope"], "no MLflow experiment named 'nope'"),
        (["--experiment", "Default"], "experiment 'Default' has no runs"),
        (["--experiment", "plateau", "--margin", "0"], "--margin"),
        (["--experiment", "plateau", "--fraction", "1.5"], "--fraction"),
        ([], "name a study folder, or --experiment and --tracking-uri"),
    ],
)
def test_bad_report_input_exits_2_with_one_line(
    plateau_study, argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = ["--tracking-uri", plateau_study] if argv else []

    assert main(["report", *argv, *uri, "--out", str(tmp_path / "r")]) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "r").exists()


def test_experiment_without_sweep_params_lists_what_it_found(tmp_path, capsys):
    from mlflow import MlflowClient
    from mlflow.entities import Param

    uri = f"sqlite:///{tmp_path / 'other.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("other"))
    client.log_batch(run.info.run_id, params=[Param("lr", "0.1"), Param("depth", "3")])

    code = main(
        ["report", "--experiment", "other", "--tracking-uri", uri, "--out", str(tmp_path / "r")]
    )

    assert code == EXIT_BAD_INPUT
    assert "params found: depth, lr" in capsys.readouterr().err
