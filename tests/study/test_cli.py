"""Bad input through the CLI: exit status 2, one line on stderr naming the problem, no traceback,
nothing made and nothing started (Ray is never started: the tests make starting it fail)."""

import functools
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fakes import FakeCluster, study_with_store
from ports import free_port

from study import cli, cluster, driver, folder
from study.cli import EXIT_BAD_INPUT, main
from study.config import ConfigError, load_config
from study.outcome import Ending, Outcome
from trainables.handle import ENVELOPE_KEYS

BAD_YAML = "name: broken\nsweep: [unclosed\n"


def _stopped_study(
    path: Path,
    tracking_uri: str | None = None,
    state: bytes | None = None,
    store: bool = False,
    overrides: tuple[str, ...] = (),
) -> Path:
    """A study folder as a stopped study leaves it: config, ids, Tune's state, a trial checkpoint.

    ``state`` replaces the bytes of the trial's latest checkpoint (the one Tune would resume).
    ``store``: a real MLflow store with its parent run KILLED, for a resume that gets as far as
    Ray; otherwise an empty file stands for it (the checks that refuse first only look for it).
    """
    if store:
        cfg, meta = _template_store()
        folder.create(path, load_config(None, [*cfg, *overrides]))
        shutil.copy(Path(meta.tracking_uri.removeprefix("sqlite:///")), path / "mlflow.db")
        folder.write_meta(path, replace(meta, tracking_uri=f"sqlite:///{path / 'mlflow.db'}"))
    else:
        folder.create(path, load_config(None, ["sweep.seed=[0]", "sweep.peak_lr=[0.1]"]))
        uri = tracking_uri or f"sqlite:///{path / 'mlflow.db'}"
        if tracking_uri is None:
            (path / "mlflow.db").touch()  # the store is there (resume and report look for it)
        folder.write_meta(path, folder.StudyMeta(uri, "1", "0" * 32))
    tune = path / "tune"
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(b"Tune's pickled Tuner")
    trial = json.dumps({"trial_id": "abc_00000", "status": "RUNNING"})
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": [[trial, "{}"]]})
    )
    older, latest = tune / "abc_00000/checkpoint_000001", tune / "abc_00000/checkpoint_000002"
    for checkpoint in (older, latest):
        checkpoint.mkdir(parents=True)
        torch.save(
            {**dict.fromkeys(ENVELOPE_KEYS, 0), "history": []},  # every key a trial reads
            checkpoint / "state.pt",
        )
    if state is not None:
        (latest / "state.pt").write_bytes(state)
    return path


@functools.cache
def _template_store() -> tuple[list[str], folder.StudyMeta]:
    """A real store with a parent run KILLED, made once: each case copies its file."""
    path = Path(tempfile.mkdtemp(prefix="knee-store-")) / "study"
    overrides = ["sweep.seed=[0]", "sweep.peak_lr=[0.1]"]
    _, meta = study_with_store(path, tuple(overrides))
    return overrides, meta


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``path`` with its size and modification time."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in [path, *path.rglob("*")]
    }


# (argv, words the message must contain); {tmp}: a temporary folder, {port}: a closed port,
# {out}: the study folder a `run` would make, {study}: a stopped study (see _setup).
CASES = {
    "unknown key": (["run", "--set", "train.epoch=3"], "train.epoch: unknown key"),
    "wrong type": (["run", "--set", "train.batch_size=many"], "train.batch_size"),
    "explore fraction above 1": (
        ["run", "--set", "sweep.explore_fraction=[0.5, 1.5]"],
        "sweep.explore_fraction[1]",
    ),
    "explore fraction below 0": (
        ["run", "--set", "sweep.explore_fraction=[-0.1]"],
        "sweep.explore_fraction[0]",
    ),
    "warmup + explore > 1": (
        ["run", "--set", "train.warmup_fraction=0.3", "--set", "sweep.explore_fraction=[0.8]"],
        "train.warmup_fraction + explore_fraction must be <= 1",
    ),
    "peak LR 0": (["run", "--set", "sweep.peak_lr=[0.1, 0]"], "sweep.peak_lr[1]"),
    "peak LR negative": (["run", "--set", "sweep.peak_lr=[-0.1]"], "sweep.peak_lr[0]"),
    "empty sweep": (["run", "--set", "sweep.seed=[]"], "sweep.seed"),
    "repeated sweep value": (["run", "--set", "sweep.seed=[1, 1]"], "sweep.seed: values must"),
    "epochs 0": (["run", "--set", "train.epochs=0"], "train.epochs"),
    "unknown model": (["run", "--set", "model.name=vgg"], "model.name"),
    "unknown dataset": (["run", "--set", "data.dataset=mnist"], "data.dataset"),
    "unknown schedule": (["run", "--set", "sweep.schedule=[knee, warmup]"], "sweep.schedule[1]"),
    "CIFAR root missing": (
        ["run", "--set", "data.dataset=cifar10", "--set", "data.root={tmp}/no-such-folder"],
        "no-such-folder is not a directory",
    ),
    "CIFAR root not CIFAR": (
        ["run", "--set", "data.dataset=cifar10", "--set", "data.root={tmp}"],
        "has no cifar-10-batches-py/ inside",
    ),
    "CIFAR without a root": (["run", "--set", "data.dataset=cifar100"], "data.root"),
    "unreadable YAML": (["run", "{tmp}/broken.yaml"], "not valid YAML"),
    "missing config file": (["validate", "{tmp}/no-such-study.yaml"], "no-such-study.yaml"),
    "override without a value": (["run", "--set", "train.epochs"], "expected key=value"),
    "autoscaling on the study's own Ray": (
        ["run", "--set", "resources.autoscaling=true"],
        "resources.autoscaling: a study's own local Ray never grows",
    ),
    "unreachable --tracking-uri": (
        ["run", "--tracking-uri", "http://127.0.0.1:{port}"],
        "--tracking-uri: no MLflow server answers",
    ),
    "asha with an explore phase as long as the budget": (
        ["run", "--set", "tune.scheduler=asha", "--set", "tune.grace_period=101"],
        "tune.scheduler: asha judges trials after the longest explore phase",
    ),
    "unknown --tracking-uri scheme": (
        ["run", "--tracking-uri", "bogus://x"],
        "--tracking-uri: MLflow has no store for bogus: URIs",
    ),
    "database --tracking-uri without its driver": (
        ["run", "--tracking-uri", "mssql+nosuchdriver://knee@127.0.0.1:{port}/runs"],
        "--tracking-uri: cannot use mssql+nosuchdriver: ",
    ),
    "malformed --address": (["run", "--address", "not a host"], "--address: expected HOST:PORT"),
    "--address where nothing listens": (
        ["run", "--address", "127.0.0.1:{port}"],
        "--address: nothing answers at 127.0.0.1:",
    ),
    "--address of the dashboard": (
        ["run", "--address", "http://127.0.0.1:{port}"],
        "is the dashboard's (jobs) address; a study joins the head at HOST:6379",
    ),
    "run into an existing study": (["run", "--output", "{study}"], "already holds a study"),
    "resume a folder that is not a study": (["resume", "{tmp}"], "is not a study folder"),
    "resume with a damaged study.json": (["resume", "{study}"], "study.json is damaged"),
    "resume with a wrongly typed study.json": (
        ["resume", "{study}"],
        "study.json is damaged: tracking_uri: input should be a valid string, got 5",
    ),
    "resume with its MLflow store gone": (["resume", "{study}"], "no MLflow store at"),
    "report with its MLflow store gone": (["report", "{study}"], "no MLflow store at"),
    "report into a file": (
        ["report", "{study}", "--out", "{tmp}/broken.yaml"],
        "broken.yaml is a file; a report is a folder",
    ),
    "report of a store that is not there": (
        ["report", "--experiment", "x", "--tracking-uri", "sqlite:///{tmp}/no-such.db"],
        "no MLflow store at {tmp}/no-such.db",
    ),
    "resume a study that never started": (["resume", "{study}"], "no Ray Tune state"),
    "resume from a corrupt checkpoint": (
        ["resume", "{study}"],
        "checkpoint_000002/state.pt: damaged checkpoint",
    ),
    "resume from a checkpoint of something else": (
        ["resume", "{study}"],
        "checkpoint_000002/state.pt: not a knee-study trial state",
    ),
    "resume with Tune's state damaged and no good copy": (
        ["resume", "{study}"],
        "experiment state is damaged",
    ),
    "resume with its MLflow server gone": (
        ["resume", "{study}"],
        "--tracking-uri: no MLflow server answers",
    ),
    "resume naming a moved store that is not there either": (
        ["resume", "{study}", "--tracking-uri", "sqlite:///{tmp}/moved/mlflow.db"],
        "no MLflow store at {tmp}/moved/mlflow.db",
    ),
    "validate with a malformed --address": (
        ["validate", "--address", "not a host"],
        "--address: expected HOST:PORT",
    ),
    "validate with an --address where nothing listens": (
        ["validate", "--address", "127.0.0.1:{port}"],
        "--address: nothing answers at 127.0.0.1:",
    ),
    "validate with an unreachable --tracking-uri": (
        ["validate", "--tracking-uri", "http://127.0.0.1:{port}"],
        "--tracking-uri: no MLflow server answers",
    ),
    "validate with an unknown --tracking-uri scheme": (
        ["validate", "--tracking-uri", "bogus://x"],
        "--tracking-uri: MLflow has no store for bogus: URIs",
    ),
    "validate with an unusable --storage": (
        ["validate", "--storage", "ftp://host/knee"],
        "--storage: unsupported scheme 'ftp://'",
    ),
    "validate into an existing study": (["validate", "--output", "{study}"], "already holds"),
    "a list the shell cut, taken for the config": (
        ["run", "--set", "sweep.seed=[0,", "1]"],
        'quote the whole item, e.g. --set "sweep.seed=[0, 1]"',
    ),
    "a list the shell cut, after a config": (
        ["validate", "{tmp}/broken.yaml", "--set", "sweep.schedule=[knee,", "cosine]"],
        'quote the whole item, e.g. --set "sweep.schedule=[knee, cosine]"',
    ),
    "a list the shell cut, its end elsewhere": (
        ["validate", "--set", "sweep.seed=[0,"],
        "--set sweep.seed: '[0,' is a list cut short",
    ),
}


def _setup(case: str, tmp: Path, port: int) -> Path:
    """The stopped study a case resumes (or runs into), damaged as the case says."""
    study = tmp / "stopped"
    if case == "resume with a damaged study.json":
        _stopped_study(study)
        (study / folder.META_FILE).write_text('{"tracking_uri": ')
    elif case == "resume with a wrongly typed study.json":
        _stopped_study(study)
        meta = json.loads((study / folder.META_FILE).read_text())
        (study / folder.META_FILE).write_text(json.dumps({**meta, "tracking_uri": 5}))
    elif case in ("resume with its MLflow store gone", "report with its MLflow store gone"):
        _stopped_study(study)
        (study / "mlflow.db").unlink()
    elif case == "report into a file":
        _stopped_study(study)
    elif case == "resume a study that never started":
        _stopped_study(study, store=True)
        (study / "tune" / "tuner.pkl").unlink()
    elif case == "resume from a corrupt checkpoint":
        _stopped_study(study, state=b"\x00garbage, not a torch.save file" * 100, store=True)
    elif case == "resume from a checkpoint of something else":
        _stopped_study(study, store=True)
        torch.save({"weights": torch.zeros(3)}, study / "tune/abc_00000/checkpoint_000002/state.pt")
    elif case == "resume with Tune's state damaged and no good copy":
        _stopped_study(study, store=True)
        next((study / "tune").glob("experiment_state-*.json")).write_text('{"trial_data": [[')
    elif case == "resume with its MLflow server gone":
        _stopped_study(study, tracking_uri=f"http://127.0.0.1:{port}")
    elif case in (
        "run into an existing study",
        "validate into an existing study",
        "resume naming a moved store that is not there either",
    ):
        _stopped_study(study)
    return study


@pytest.fixture
def no_ray(monkeypatch):
    """Bad input must stop the command before Ray starts: make starting it fail the test."""

    def refuse(address):
        raise AssertionError(f"Ray was started (address={address}) for bad input")

    monkeypatch.setattr(cluster, "connect", refuse)


class RayStarted(Exception):
    """Good input got as far as starting Ray."""


@pytest.fixture
def ray_start_fails(monkeypatch):
    def start_ray(address):
        raise RayStarted

    monkeypatch.setattr(cluster, "connect", start_ray)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_starts_nothing(case, tmp_path, capsys, no_ray):
    argv, words = CASES[case]
    port = free_port()
    (tmp_path / "broken.yaml").write_text(BAD_YAML)
    study = _setup(case, tmp_path, port)
    out = tmp_path / "new-study"
    argv = [a.format(tmp=tmp_path, port=port, study=study, out=out) for a in argv]
    if argv[0] == "run" and "--output" not in argv:
        argv += ["--output", str(out)]
    before = _snapshot(tmp_path)

    assert main(argv) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.startswith("knee-study: error: "), err
    assert err.count("\n") == 1, err  # one line
    assert words.format(tmp=tmp_path) in err
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before  # nothing made, nothing touched


def test_a_study_resumes_past_a_checkpoint_of_a_finished_trial(tmp_path, ray_start_fails):
    """Only checkpoints Tune will restore are read: a finished trial's are never used."""
    study = _stopped_study(tmp_path / "stopped", state=b"garbage", store=True)
    state_file = next((study / "tune").glob("experiment_state-*.json"))
    trial = json.dumps({"trial_id": "abc_00000", "status": "TERMINATED"})
    state_file.write_text(json.dumps({"trial_data": [[trial, "{}"]]}))

    with pytest.raises(RayStarted):  # got past every check, as far as starting Ray
        main(["resume", str(study)])


def test_resume_puts_back_the_last_good_copy_of_a_damaged_tune_state(tmp_path, ray_start_fails):
    study = _stopped_study(tmp_path / "stopped", store=True)
    snapshot = next((study / "tune").glob("experiment_state-*.json"))
    good = snapshot.read_bytes()
    # The last complete set of the session's files, as SnapshotBackup keeps it: one zip.
    with zipfile.ZipFile(snapshot.with_name(snapshot.name + ".last-good"), "w") as backup:
        backup.writestr(snapshot.name, good)
    snapshot.write_bytes(b"")  # the driver died while Tune rewrote it

    with pytest.raises(RayStarted):
        main(["resume", str(study)])
    assert snapshot.read_bytes() == good


def test_validate_accepts_the_default_study(capsys):
    assert main(["validate"]) == 0
    captured = capsys.readouterr()
    assert "digits-quick: valid, 100 trials" in captured.out
    assert captured.err == ""  # 10 seeds a point: a verdict is within reach


@pytest.mark.parametrize(
    ("sets", "note"),
    [
        (["sweep.seed=[0, 1]"], "2 seeds a point: the verdict can be inconclusive at best"),
        (["sweep.seed=[0, 1, 2, 3, 4, 5]"], "robust needs 7 finished seeds a setting"),
        (
            [
                *("tune.search=optuna", "tune.num_samples=4", "sweep.explore_fraction=[0, 1]"),
                *("sweep.peak_lr=[0.01, 0.3]", "sweep.seed=[0, 1]"),
            ],
            "2 seeds a point: the search's summary needs 3",
        ),
    ],
)
def test_a_study_too_small_for_its_verdict_is_told_before_it_runs(capsys, sets, note):
    """The README's old example (two seeds) could never reach a verdict, silently."""
    assert main(["validate", *(arg for s in sets for arg in ("--set", s))]) == 0

    err = capsys.readouterr().err
    assert err.startswith("knee-study: note: ")
    assert note in err
    assert err.count("\n") == 1


def test_a_resumed_study_the_cluster_cannot_run_says_where_its_settings_are(
    tmp_path, capsys, monkeypatch
):
    """resume takes no --set: the refusal names the study's own settings file; Ray is shut."""
    study = _stopped_study(
        tmp_path / "stopped", store=True, overrides=("resources.gpus_per_trial=1",)
    )
    connected = FakeCluster({"CPU": 2.0})
    monkeypatch.setattr(cluster, "connect", lambda address: connected)
    capsys.readouterr()

    assert main(["resume", str(study)]) == EXIT_BAD_INPUT

    (line,) = capsys.readouterr().err.splitlines()
    assert "set resources.autoscaling=true" in line
    assert line.endswith(f"a resumed study's settings are in {study / folder.CONFIG_FILE}")
    assert not connected.connected


def test_a_study_that_fails_to_set_up_leaves_no_half_made_study(tmp_path, monkeypatch):
    """Tune refusing to build (here: a bug) after the folder and the parent run exist: the folder
    is no study any more, so `run` takes it again; the parent run is FAILED, not RUNNING."""
    from mlflow import MlflowClient

    def broken(*args, **kwargs):
        raise RuntimeError("Tune refused")

    connected = FakeCluster()
    monkeypatch.setattr(cluster, "connect", lambda address: connected)
    monkeypatch.setattr(driver, "build_tuner", broken)
    output = tmp_path / "study"
    argv = ["run", "--output", str(output), "--set", "name=half"]

    with pytest.raises(RuntimeError, match="Tune refused"):
        main(argv)

    assert not (output / folder.CONFIG_FILE).exists()
    assert not (output / folder.META_FILE).exists()
    client = MlflowClient(f"sqlite:///{output / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("half").experiment_id])
    assert parent.info.status == "FAILED"
    with pytest.raises(RuntimeError, match="Tune refused"):  # not "already holds a study"
        main(argv)
    assert not connected.connected  # Ray is not left up


def test_a_report_reads_a_cifar_study_whose_data_is_not_on_this_machine(tmp_path):
    """A report needs the runs, not the data: the CIFAR root is checked by run, not by report."""
    data = tmp_path / "data"
    (data / "cifar-10-batches-py").mkdir(parents=True)
    cfg = load_config(None, ["data.dataset=cifar10", f"data.root={data}", "model.name=cnn"])
    study = folder.create(tmp_path / "study", cfg)
    folder.write_meta(study, folder.StudyMeta("sqlite:////x/mlflow.db", "1", "0" * 32))
    (data / "cifar-10-batches-py").rmdir()

    read, _ = folder.open_study(study, check_files=False)
    assert read.data.root == data

    with pytest.raises(ConfigError, match="has no cifar-10-batches-py/ inside"):
        folder.open_study(study)  # resume does check: its trials would fail


def test_an_experiment_mlflow_will_not_take_runs_is_one_line_and_no_study(
    tmp_path, capsys, monkeypatch
):
    """The study's name belongs to a deleted experiment (MLflow keeps it, and refuses runs in
    it): one line naming MLflow's reason, exit 2, and the folder is no study."""
    from mlflow import MlflowClient

    output = tmp_path / "study"
    output.mkdir()
    client = MlflowClient(f"sqlite:///{output / 'mlflow.db'}")
    client.delete_experiment(client.create_experiment("gone"))
    monkeypatch.setattr(cluster, "connect", lambda address: FakeCluster())
    capsys.readouterr()

    assert main(["run", "--output", str(output), "--set", "name=gone"]) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.startswith("knee-study: error: MLflow: "), err
    assert err.count("\n") == 1, err
    assert "active" in err  # MLflow's reason: the experiment is not active
    assert not (output / folder.CONFIG_FILE).exists()


@pytest.mark.parametrize(
    ("ending", "code"),
    [
        (Ending.FINISHED, 0),
        (Ending.ALREADY_FINISHED, 0),
        (Ending.TRIALS_FAILED, 1),
        (Ending.STOPPED, 130),
    ],
)
def test_each_outcome_has_its_exit_status(ending, code):
    """The README's exit statuses: 0 done (a resumed study that had finished: nothing to do),
    1 some trials failed, 130 stopped (resume it)."""
    assert cli.exit_code(Outcome(ending, trials=4, finished=2, stopped=1, failed=1)) == code


def test_validate_checks_the_options_run_takes_and_passes_good_ones(tmp_path, capsys, no_ray):
    storage = tmp_path / "ray-state"
    argv = ["validate", "--storage", str(storage), "--output", str(tmp_path / "study")]
    argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'runs.db'}"]

    assert main(argv) == 0

    assert "digits-quick: valid, 100 trials" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing made


def test_help_imports_neither_torch_nor_sklearn():
    """--help answers at once: the arguments are read before anything heavy is imported."""
    code = (
        "import sys\n"
        "from study.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['resume', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted({'torch', 'sklearn', 'mlflow', 'ray', 'pandas'} & loaded))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.splitlines()[-1] == "[]", proc.stdout


def test_validate_says_what_the_config_will_do(capsys):
    assert main(["validate", "--set", "sweep.epochs=[20, 40]"]) == 0

    err = capsys.readouterr().err
    assert "knee-study: note: sweep.epochs [20, 40] sets each trial's budget" in err
