"""Test-wide set-up. Ray reads its environment at import, so this runs before any test imports it:
every Ray instance a test starts binds 127.0.0.1 only (nothing may leave loopback here)."""

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from study.ray_env import prepare_ray_env

prepare_ray_env(local=True)

KNEE_STUDY = str(Path(sys.executable).parent / "knee-study")  # the installed command


@pytest.fixture(scope="session")
def knee_study() -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed ``knee-study`` command as a user would: ``knee_study("run", ...)``;
    ``sets={"train.epochs": 2}`` adds ``--set train.epochs=2``; ``cwd``: the folder it runs in."""

    def run(
        *args: str,
        sets: Mapping[str, object] = {},
        timeout: float = 300,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        overrides = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
        return subprocess.run(
            [KNEE_STUDY, *args, *overrides],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )

    return run
