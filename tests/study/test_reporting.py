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
