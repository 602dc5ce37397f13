"""The study's report around the study: attached to MLflow, never in the way of its outcome."""

import pandas as pd

from analysis.policy import Policy
from analysis.verdict import Verdict
from study import reporting


def test_a_report_that_cannot_be_attached_to_mlflow_is_one_line_not_an_error(tmp_path, capsys):
    """The files in the study folder are the report: MLflow refusing its copy (here: no such
    parent run) is said in one line and nothing is raised."""
    (tmp_path / "report.md").write_text("# a report\n")
    verdict = Verdict("robust", pd.DataFrame(), "50% explore is robust.", Policy())
    reporting.attach(f"sqlite:///{tmp_path / 'mlflow.db'}", "0" * 32, tmp_path, verdict)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("knee-study")]  # not MLflow's
    assert len(lines) == 1, err
    assert lines[0].startswith("knee-study: report not attached to the MLflow run: Mlflow")
    assert lines[0].endswith(f"(it is in {tmp_path})")


def test_the_extend_hint_names_the_seeds_an_inconclusive_study_needs(tmp_path):
    from study.config import load_config

    cfg = load_config(None, ["sweep.seed=[0, 2]"])
    hint = reporting.extend_hint(cfg, tmp_path)
    bare = Verdict("inconclusive", pd.DataFrame(), "50% explore: inconclusive.", Policy())
    asked = Verdict(
        "inconclusive", pd.DataFrame({"seeds_needed": [9, None]}), "inconclusive.", Policy()
    )

    # Robust needs 7 finished seeds whatever the gaps; a verdict that estimates 9 asks for 9.
    assert hint(bare) == (
        "To decide it, grow the study to 7 seeds a setting (only the new seeds run, under the "
        f"same parent run): `knee-study extend {tmp_path} --set 'sweep.seed=[0, 2, 1, 3, 4, 5, "
        "6]'`"
    )
    assert "grow the study to 9 seeds" in hint(asked)
    assert "sweep.seed=[0, 2, 1, 3, 4, 5, 6, 7, 8]" in hint(asked)
    assert hint(Verdict("robust", pd.DataFrame(), "robust.", Policy())) is None
