"""A sqlite MLflow store for the analysis tests; tests/factories.py log_study fills it."""

import pytest


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One sqlite store for the analysis tests; each test writes its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
