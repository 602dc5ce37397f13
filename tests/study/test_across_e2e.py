"""`knee-study report STUDY_A STUDY_B`: one report across two real studies (digits with an MLP
and with a CNN): one row per study, a panel per study and the statement across them, each
study's own verdict beside it; what cannot make such a report is one line, exit 2."""

import pandas as pd
import pytest

from study.cli import EXIT_BAD_INPUT, EXIT_OK, main

pytestmark = pytest.mark.slow

SMALL = {
    "train.epochs": 2,
    "sweep.explore_fraction": "[0.0, 0.5]",
    "sweep.peak_lr": "[0.05]",
    "sweep.seed": "[0, 1, 2]",
    "sharpness.steps": 2,
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory, knee_study):
    root = tmp_path_factory.mktemp("across")
    made = []
    for model in ("mlp", "cnn"):
        output = root / f"digits-{model}"
        done = knee_study("run", "--output", str(output), sets={**SMALL, "model.name": model})
        assert done.returncode == 0, done.stderr[-3000:]
        made.append(output)
    return root, made


def test_one_report_across_two_studies(studies, capsys):
    root, (mlp, cnn) = studies
    out = root / "across"
    assert main(["report", str(mlp), str(cnn), "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert f"report across 2 studies in {out / 'report.html'}" in printed

    rows = pd.read_csv(out / "studies.csv")
    assert rows["study"].tolist() == ["digits-mlp", "digits-cnn"]
    assert rows["trained"].str.contains("model mlp").iloc[0]
    assert rows["trained"].str.contains("model cnn").iloc[1]
    assert (rows["seeds"] == 3).all()  # each study's three seeds at 50%
    # Three seeds a point cannot rule out a 30% divergence excess: neither study, nor the two
    # together, may be called robust.
    assert set(rows["decision"]) <= {"inconclusive", "not robust"}
    decision = "not robust" if (rows["decision"] == "not robust").any() else "inconclusive"
    report = (out / "report.md").read_text()
    assert f"**Verdict across 2 studies: {decision}.**" in report
    assert f"verdict across them: {decision.upper()}" in printed
    for name in ("digits-mlp", "digits-cnn"):
        assert report.count(f"| {name} ") == 1  # its row
        assert f"**{name}: " in report  # its own verdict, in words
    assert (out / "explore_panels.png").read_bytes().startswith(b"\x89PNG")


def test_options_may_come_between_the_study_folders(studies, capsys):
    root, (mlp, cnn) = studies
    out = root / "across-intermixed"
    assert main(["report", str(mlp), "--margin", "0.002", str(cnn), "--out", str(out)]) == EXIT_OK
    assert "report across 2 studies" in capsys.readouterr().out
    assert pd.read_csv(out / "studies.csv")["study"].tolist() == ["digits-mlp", "digits-cnn"]


def test_a_studys_own_report_folder_is_refused(studies, capsys):
    _, (mlp, cnn) = studies
    before = sorted((mlp / "report").iterdir())
    assert main(["report", str(mlp), str(cnn), "--out", str(mlp / "report")]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(
        f"knee-study: error: report: --out {mlp / 'report'} is {mlp}'s own report"
    )
    assert sorted((mlp / "report").iterdir()) == before


def test_each_study_keeps_its_own_report(studies):
    _, made = studies
    for output in made:  # the report across them is written elsewhere, never over theirs
        assert "Knee study report: " in (output / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--experiment", "x"], "--experiment names one study's runs"),
        (["--tracking-uri", "sqlite:///x.db"], "study folders know their stores"),
    ],
)
def test_what_cannot_report_across_is_one_line(studies, capsys, extra, error):
    root, (mlp, cnn) = studies
    code = main(["report", str(mlp), str(cnn), "--out", str(root / "bad"), *extra])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.startswith(f"knee-study: error: report: {error}"), err
    assert err.count("\n") == 1


def test_a_folder_that_is_no_study_is_one_line(studies, capsys, tmp_path):
    _, (mlp, _) = studies
    assert main(["report", str(mlp), str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("knee-study: error: ")
    assert str(tmp_path) in err
    assert err.count("\n") == 1
