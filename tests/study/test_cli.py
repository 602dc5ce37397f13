"""Bad input through the CLI: exit status 2, one line on stderr naming the problem, nothing made."""

import socket

import pytest

from study.cli import EXIT_BAD_INPUT, main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["validate", "--set", "train.epochs=0"], "train.epochs"),
        (["validate", "--set", "sweep.explore_fraction=[0.5, 1.5]"], "sweep.explore_fraction"),
        (["validate", "--set", "model.name=vgg"], "model.name"),
        (["validate", "no-such-study.yaml"], "no-such-study.yaml"),
        (["run", "--set", "sweep.peak_lr=[-0.1]"], "sweep.peak_lr"),
        (["run", "--tracking-uri", "http://127.0.0.1:{port}"], "--tracking-uri"),
        (["resume", "{tmp}"], "is not a study folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, names, tmp_path, capsys):
    argv = [a.format(port=_free_port(), tmp=tmp_path) for a in argv]
    output = tmp_path / "study"
    if argv[0] == "run":
        argv += ["--output", str(output)]

    assert main(argv) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("knee-study: error: ")
    assert names in err
    assert "Traceback" not in err
    assert not output.exists()  # nothing launched, no half-made study folder


def test_validate_accepts_the_default_study(capsys):
    assert main(["validate"]) == 0
    assert "digits-quick: valid, 100 trials" in capsys.readouterr().out
