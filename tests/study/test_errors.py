"""One kind of bad input: every error a person fixes is a BadInput, said in one line."""

import pytest

from analysis.runs import AnalysisError
from study.checkpoints import DamagedCheckpointError
from study.cluster import AddressError
from study.config import ConfigError
from study.driver import PlanError
from study.errors import BadInput, one_line
from study.folder import StudyFolderError
from study.reporting import ReportError
from study.storage import StorageError
from study.stores import TrackingError


@pytest.mark.parametrize(
    "kind",
    [
        ConfigError,
        TrackingError,
        StudyFolderError,
        DamagedCheckpointError,
        PlanError,
        StorageError,
        AddressError,
        ReportError,
    ],
)
def test_every_input_error_is_bad_input(kind):
    """The CLI catches BadInput alone to answer with exit status 2."""
    assert issubclass(kind, BadInput)


def test_analysis_errors_are_not_the_studys():
    """analysis/ knows nothing of study/: its errors become a ReportError where a report is
    written (study.reporting.write)."""
    assert not issubclass(AnalysisError, BadInput)


def test_one_line_is_the_first_line_and_names_an_unexpected_errors_type():
    error = RuntimeError("first\nsecond")
    assert one_line(error) == "RuntimeError: first"
    assert one_line(error, expected=True) == "first"
    assert one_line(ValueError()) == "ValueError: "
    assert one_line(ValueError(), expected=True) == ""
