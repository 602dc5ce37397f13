"""A study against a real ``mlflow server`` answers its question there: the parent run holds the
verdict the report states (tag, description, numbers), every trial's run its data (one dataset
input with the digest of the data it trained on) and throughput and memory; ``knee-study extend``
grows it under the same parent and leaves the first runs alone; and the server's own UI, loaded
in headless Chromium, shows the verdict: on the Runs page in the parent run's row (a saved view
with the ``verdict`` tag column) and in the parent run's description on its page."""

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pytest
from harness import stop_session
from mlflow import MlflowClient

from study.stores import runs_page
from trainables.data import load_data

pytestmark = pytest.mark.slow

NAME = "answers"
FRACTIONS, PEAK_LR = [0.0, 0.5], 0.05
SETS = {
    "name": NAME,
    "train.epochs": 3,
    "sweep.explore_fraction": str(FRACTIONS),
    "sweep.peak_lr": f"[{PEAK_LR}]",
    "sweep.seed": "[0, 1, 2]",
    "sharpness.steps": 2,
}
GROWN_SEEDS = [0, 1, 2, 3, 4, 5]
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag, not the project's constant
CONDITION = f"verdict/peak_lr_{PEAK_LR:g}"  # the verdict metrics of the one condition swept
CHROMIUM = shutil.which("chromium")


def reported_verdict(output: Path) -> tuple[str, str]:
    """The verdict word and the whole verdict line as the study's report.md states them."""
    report = (output / "report" / "report.md").read_text()
    lines = re.findall(r"^\*\*Verdict: ([a-z ]+)\.\*\* .+$", report, re.MULTILINE)
    assert len(lines) == 1, report[:2000]
    line = next(line for line in report.splitlines() if line.startswith("**Verdict: "))
    return lines[0], line


def printed_verdict(stdout: str) -> str:
    """The verdict word of the line the CLI prints last: ``verdict: INCONCLUSIVE: ...``."""
    found = re.findall(r"^verdict: ([A-Z ]+): ", stdout, re.MULTILINE)
    assert len(found) == 1, stdout[-3000:]
    return found[0].lower()


class Picture(NamedTuple):
    """What a command printed and left: its output, the verdict word and line of report.md
    then, and from the server the experiment's id, the one run in it that is no child (the
    study's parent run), and every child run by id (each with get_run: its inputs too)."""

    stdout: str
    verdict: tuple[str, str]
    experiment_id: str
    parent: Any
    children: dict[str, Any]


def picture(done: subprocess.CompletedProcess, output: Path, uri: str) -> Picture:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(NAME)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if PARENT_TAG not in run.data.tags]
    assert len(parents) == 1, [run.info.run_name for run in parents]
    children = {
        run.info.run_id: client.get_run(run.info.run_id)
        for run in runs
        if PARENT_TAG in run.data.tags
    }
    return Picture(
        done.stdout, reported_verdict(output), experiment.experiment_id, parents[0], children
    )


def best_fraction(children) -> float:
    """The explore fraction with the highest mean test_acc over its seeds, from the runs."""
    table = pd.DataFrame(
        {
            "fraction": float(run.data.params["explore_fraction"]),
            "test_acc": run.data.metrics["test_acc"],
        }
        for run in children
    )
    means = table.groupby("fraction")["test_acc"].mean()
    return float(means.idxmax())


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("answers") / "study"


@pytest.fixture(scope="module")
def first(mlflow_server, output, knee_study) -> Picture:
    """The 3-seed study against the server, and what it left right after it."""
    done = knee_study(
        "run", "--output", str(output), "--tracking-uri", mlflow_server, sets=SETS, timeout=240
    )
    return picture(done, output, mlflow_server)


@pytest.fixture(scope="module")
def grown(first, output, mlflow_server, knee_study) -> Picture:
    """The same study extended to 6 seeds, and what it left."""
    more = knee_study("extend", str(output), sets={"sweep.seed": str(GROWN_SEEDS)}, timeout=240)
    return picture(more, output, mlflow_server)


def assert_parent_answers(found: Picture, seeds: int) -> None:
    """The parent run says what the report and the CLI said, with the numbers behind it."""
    (word, line), parent = found.verdict, found.parent
    assert printed_verdict(found.stdout) == word
    assert parent.data.tags["verdict"] == word
    note = parent.data.tags["mlflow.note.content"]
    assert note.split("\n\n")[0] == line  # the report's verdict sentence, word for word
    assert "The whole report is in this run's artifacts, under report/." in note
    metrics = parent.data.metrics
    assert metrics[f"{CONDITION}/seeds"] == seeds
    assert metrics[f"{CONDITION}/best_fraction"] == best_fraction(found.children.values())


def test_the_parent_run_holds_the_verdict_and_each_trial_its_data(first, output, mlflow_server):
    experiment_id, parent, children = first.experiment_id, first.parent, first.children
    meta = json.loads((output / "study.json").read_text())
    assert (meta["tracking_uri"], meta["experiment_id"]) == (mlflow_server, experiment_id)
    assert meta["parent_run_id"] == parent.info.run_id
    link = runs_page(mlflow_server, experiment_id, view="knee-study")
    assert f"browse it:    {link}\n" in first.stdout
    assert parent.info.status == "FINISHED"
    assert len(children) == len(FRACTIONS) * 3
    assert {run.data.tags[PARENT_TAG] for run in children.values()} == {parent.info.run_id}
    assert_parent_answers(first, seeds=3)

    # The digest of the data every trial trains on, computed here: the default study's digits
    # with its default split (no loader options, 10% of the train split held out).
    digest = load_data("digits", {}, val_fraction=0.1).digest()
    for run in children.values():
        inputs = run.inputs.dataset_inputs
        assert len(inputs) == 1, run.info.run_name
        dataset = inputs[0].dataset
        assert (dataset.name, dataset.digest) == ("digits", digest[:16])
        assert json.loads(dataset.source)["sha256"] == digest
        assert run.data.metrics["system/images_per_second"] > 0, run.info.run_name
        assert run.data.metrics["system/peak_memory_mb"] > 0, run.info.run_name


def test_extend_grows_the_study_under_the_same_parent(first, grown, output):
    parent, before = first.parent, first.children
    parent_after, after = grown.parent, grown.children
    assert grown.experiment_id == first.experiment_id
    assert parent_after.info.run_id == parent.info.run_id  # the one run that is no child
    assert json.loads((output / "study.json").read_text())["parent_run_id"] == parent.info.run_id
    assert parent_after.info.status == "FINISHED"

    # Exactly one run per trial of the grown grid, all children of that parent.
    points = sorted(
        (float(run.data.params["explore_fraction"]), int(run.data.params["seed"]))
        for run in after.values()
    )
    assert points == sorted((f, s) for f in FRACTIONS for s in GROWN_SEEDS)
    assert {run.data.tags[PARENT_TAG] for run in after.values()} == {parent.info.run_id}
    assert all(run.info.status == "FINISHED" for run in after.values())

    # The first three seeds' runs are the same runs, untouched; the new ones are seeds 3 to 5.
    assert before.keys() <= after.keys()
    for run_id, run in before.items():
        assert after[run_id].info.end_time == run.info.end_time, run.info.run_name
        assert after[run_id].data.metrics == run.data.metrics, run.info.run_name
    assert {int(run.data.params["seed"]) for run in before.values()} == {0, 1, 2}
    new = [run for run_id, run in after.items() if run_id not in before]
    assert sorted(int(run.data.params["seed"]) for run in new) == [3, 3, 4, 4, 5, 5]

    # The rewritten report counts six seeds a fraction, over the server's runs.
    summary = pd.read_csv(output / "report" / "summary.csv")
    assert sorted(summary["explore_fraction"]) == FRACTIONS
    assert summary["test_acc_n"].tolist() == [6, 6]
    table = pd.read_csv(output / "report" / "runs.csv")
    assert set(table["run_id"]) == after.keys()
    assert sorted(table["seed"]) == sorted(GROWN_SEEDS * 2)
    assert_parent_answers(grown, seeds=6)


VOID_TAGS = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"))


class GridCells(HTMLParser):
    """The text of every cell of the MLflow runs table in a dumped DOM, by (row id, column id):
    its rows (AG Grid) carry the run id as ``row-id``, their cells the column as ``col-id``."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self._open: list[tuple[str, str | None, str | None]] = []  # (tag, row id, column id)
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        row, column = self._open[-1][1:] if self._open else (None, None)
        if tag not in VOID_TAGS:
            self._open.append((tag, found.get("row-id", row), found.get("col-id", column)))

    def handle_endtag(self, tag):
        for at in range(len(self._open) - 1, -1, -1):
            if self._open[at][0] == tag:
                del self._open[at:]
                return

    def handle_data(self, data):
        if self._open and all(self._open[-1][1:]):
            key = self._open[-1][1:]
            self.cells[key] = self.cells.get(key, "") + data


def rendered(url: str, profile: Path) -> str:
    """The DOM headless Chromium renders for ``url`` (the MLflow UI is a JS app: 20 s of virtual
    time for its requests to the server), every process it started stopped afterwards."""
    command = [
        CHROMIUM,
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    browser = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        dom, _ = browser.communicate(timeout=90)
    finally:
        stop_session(browser.pid, grace=5, term=False)
    assert browser.returncode == 0, dom[-2000:]
    return dom


def rendered_until(url: str, profile: Path, found, tries: int = 3):
    """``found(dom)`` of the first DOM it is true of: a busy machine may use up the virtual time
    before the runs arrive; the last DOM's ``found`` after ``tries``."""
    for _ in range(tries):
        answer = found(rendered(url, profile))
        if answer:
            break
    return answer


VERDICT_COLUMN = "tags.`verdict`"


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (`chromium` not on PATH)")
def test_the_runs_page_shows_the_parent_runs_verdict(first, output, mlflow_server, tmp_path):
    """The page the study's ``browse it`` line links to: the experiment's Runs page in the view
    the study saved (*Views*: the default columns show no tag), where the parent run's row says
    its verdict."""
    parent = first.parent
    word, _ = reported_verdict(output)  # now: after the extend too, when that ran first
    url = first.stdout.split("browse it:    ", 1)[1].split("\n", 1)[0]
    assert url.startswith(mlflow_server)

    def parent_row(dom):
        cells = GridCells(dom).cells
        return cells if (parent.info.run_id, VERDICT_COLUMN) in cells else None

    cells = rendered_until(url, tmp_path / "chromium", parent_row)
    assert cells, "no verdict cell in the parent run's row of the Runs page"
    assert cells[(parent.info.run_id, VERDICT_COLUMN)].strip() == word
    # The row is the study's run: its name (after the run's colour swatch, a hidden text).
    assert cells[(parent.info.run_id, "attributes.`Run Name`")].endswith(NAME)


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (`chromium` not on PATH)")
def test_the_parent_runs_page_shows_the_verdict_sentence(first, output, mlflow_server, tmp_path):
    """The parent run's own page: its description is the report's verdict sentence."""
    experiment_id, parent = first.experiment_id, first.parent
    word, line = reported_verdict(output)  # now: after the extend too, when that ran first
    sentence = line.split("** ", 1)[1]
    # In the model-training view, as the Runs page is (else MLflow 3 shows it as a GenAI run).
    page = f"{mlflow_server}/#/experiments/{experiment_id}/runs/{parent.info.run_id}"
    url = f"{page}?workflowType=machine_learning"

    def text(dom):
        words = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))
        return words if f"Verdict: {word}." in words else None

    shown = rendered_until(url, tmp_path / "chromium", text)
    assert shown, f"no 'Verdict: {word}.' on the parent run's page"
    assert sentence.split(" (")[0] in shown  # the sentence itself, up to its first parenthesis
