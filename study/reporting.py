"""The study's report: written when a study ends, rewritten by ``knee-study report``, and
attached to the study's parent run in MLflow.

The files in the report folder are the report. Attaching them to MLflow may fail (a server that
does not serve artifacts), and so may the report after a study (a bug, runs MLflow lost); either
way the study's outcome stands and one line on stderr says what happened.
"""

from __future__ import annotations

import ast
import contextlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from study import folder
from study.config import StudyConfig
from study.config_sections import Objective
from study.errors import BadInput, one_line
from study.stores import check_tracking_uri

if TYPE_CHECKING:
    from analysis.across import AcrossVerdict
    from analysis.policy import Policy
    from analysis.verdict import Verdict


class ReportError(BadInput):
    """The runs cannot make a report (no such experiment, runs without the sweep's params), or
    the report has nowhere to go."""


def policy(
    objective: Objective | None = None,
    fraction: float = 0.5,
    margin: float | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> Policy:
    """The rules a report decides by: the study's ``objective`` (default: test accuracy,
    higher is better, margin 0.2 points), each part replaced by what is given."""
    from analysis.policy import Policy  # scipy only: no pandas or matplotlib yet

    objective = objective or Objective()
    metric = metric or objective.metric
    # A metric named without its mode takes its own direction, not the objective's.
    mode = mode or (objective.mode if metric == objective.metric else "")
    margin = objective.margin if margin is None else margin
    return Policy(fraction=fraction, margin=margin, metric=metric, mode=mode)


def write(
    experiment: str,
    tracking_uri: str,
    parent_run_id: str | None,
    out: Path,
    rules: Policy | None = None,
    swept: dict[str, list] | None = None,
    next_step: Callable[[Verdict], str | None] | None = None,
) -> Verdict:
    """Load the runs and the history of those the learning curves draw, write the report into
    ``out`` decided by ``rules`` (default :func:`policy`) and print where it is and the verdict.
    ``swept``: the grid the study ran (:func:`study_grid`), so a fraction or a condition MLflow
    has no run of is named rather than left out. Returns the verdict.

    Raises :class:`ReportError` when the runs cannot make a report or ``out`` is a file, and
    :class:`study.stores.TrackingError` when there is no store to read them from.
    """
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out: {out} is a file; a report is a folder of files")
    check_tracking_uri(tracking_uri, must_exist=True)
    # analysis brings pandas and matplotlib: imported when a report is written, not before.
    from analysis import curves
    from analysis.report import verdict_line, write_report
    from analysis.runs import AnalysisError, load_history, load_runs

    try:
        runs = load_runs(experiment, tracking_uri, parent_run_id)
        rules = rules or policy()
        # A request per run and metric: only the trials and metrics the learning curves draw.
        needed = curves.needed(runs, metric=rules.metric)
        metrics = curves.history_metrics(rules.metric)
        history = load_history(None, tracking_uri, runs=needed, metrics=metrics)
        title = f"Knee study report: {experiment}"
        verdict = write_report(
            runs, out, title, policy=rules, history=history, swept=swept, next_step=next_step
        )
    except AnalysisError as error:  # analysis knows nothing of the study's errors
        raise ReportError(error) from None
    trials = f"{len(runs)} trial{'s' * (len(runs) != 1)}"
    print(f"knee-study: report of {trials} in {out.resolve() / 'report.html'}")
    print(verdict_line(verdict))
    return verdict


@dataclass(frozen=True)
class StudySource:
    """Where one study of a report across studies is: its runs (``experiment`` in the store at
    ``tracking_uri``, under ``parent_run_id``), the objective it is judged by and the grid it
    swept (:func:`study_grid`; None: what its runs have)."""

    name: str
    experiment: str
    tracking_uri: str
    parent_run_id: str
    objective: Objective | None = None
    swept: dict[str, list] | None = None


def folder_source(cfg: StudyConfig, meta: folder.StudyMeta, name: str) -> StudySource:
    """A study folder's runs, judged by its config's objective."""
    return StudySource(
        name, cfg.name, meta.tracking_uri, meta.parent_run_id, cfg.objective, study_grid(cfg)
    )


_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_OBJECTIVE_TAG = re.compile(rf"(?P<metric>\S+) \((?P<mode>max|min)\), margin (?P<margin>{_NUMBER})")


def parent_source(tracking_uri: str, parent_run_id: str) -> StudySource:
    """A study known only by its parent run in a store: named by the run, judged by the
    objective its last report recorded on it (the ``objective`` tag; without one, test
    accuracy, said on stderr), its grid read from its ``sweep.*`` params."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    check_tracking_uri(tracking_uri, must_exist=True)
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(parent_run_id)
        experiment = client.get_experiment(run.info.experiment_id).name
    except MlflowException as error:
        raise ReportError(
            f"--parent-run {parent_run_id}: {one_line(error, expected=True)}"
        ) from None
    name = run.info.run_name or parent_run_id
    tag = run.data.tags.get("objective")
    objective = None
    if tag is None:
        print(
            f"knee-study: note: {name} ({parent_run_id}) records no objective (its report was "
            "never attached): judged by test_acc, margin 0.002, unless --metric/--margin say",
            file=sys.stderr,
        )
    elif (found := _OBJECTIVE_TAG.fullmatch(tag)) and float(found["margin"]) > 0:
        objective = Objective(
            metric=found["metric"], mode=found["mode"], margin=float(found["margin"])
        )
    else:
        raise ReportError(
            f"--parent-run {parent_run_id}: its objective tag is {tag!r}, not "
            "'METRIC (max|min), margin M'"
        )
    return StudySource(name, experiment, tracking_uri, parent_run_id, objective, _grid(run))


def _grid(run) -> dict[str, list] | None:
    """The grid a parent run's ``sweep.*`` params record (None without them). A search's params
    are its ranges, not a grid: harmless, since its trials' tags make it a search first."""
    params = run.data.params
    grid = {}
    for key in ("explore_fraction", "peak_lr", "epochs", "steps", "decay"):
        with contextlib.suppress(KeyError, TypeError, ValueError, SyntaxError):
            values = ast.literal_eval(params[f"sweep.{key}"])
            grid[key] = [v if isinstance(v, str) else float(v) for v in values]
    return grid or None


def write_across(
    sources: Sequence[StudySource],
    out: Path,
    fraction: float = 0.5,
    margin: float | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> AcrossVerdict:
    """One report over several studies into ``out``: each study's runs judged by its own
    objective (``margin``, ``metric``, ``mode`` replace every study's), then together
    (:func:`analysis.across.across_verdict`); prints where it is and the verdict across them.
    A study whose runs cannot be read raises :class:`ReportError` naming it: no report leaves
    a study out."""
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out: {out} is a file; a report is a folder of files")
    from analysis.across import StudyRuns
    from analysis.across_report import write_across_report
    from analysis.runs import AnalysisError, load_runs

    check_distinct([s.parent_run_id for s in sources])
    for uri in dict.fromkeys(s.tracking_uri for s in sources):  # each store once
        check_tracking_uri(uri, must_exist=True)
    studies = []
    for source in _unique_names(sources):
        try:
            runs = load_runs(source.experiment, source.tracking_uri, source.parent_run_id)
        except AnalysisError as error:
            raise ReportError(f"{source.name}: {error}") from None
        rules = policy(source.objective, fraction, margin, metric, mode)
        studies.append(StudyRuns(source.name, runs, rules, source.swept))
    try:
        verdict = write_across_report(studies, out)
    except AnalysisError as error:
        raise ReportError(error) from None
    print(f"knee-study: report across {len(studies)} studies in {out.resolve() / 'report.html'}")
    print(f"verdict across them: {verdict.decision.upper()}: {verdict.explanation}")
    return verdict


def check_distinct(parent_run_ids: Sequence[str]) -> None:
    """Refuse a study named twice (the same parent run: a copy of its folder, or its run given
    again), whose seeds would count twice."""
    for run in parent_run_ids:
        if parent_run_ids.count(run) > 1:
            raise ReportError(f"study run {run} is named twice: each study counts once")


def _unique_names(sources: Sequence[StudySource]) -> list[StudySource]:
    """The sources, a name shared by several made unique by its parent run's id."""
    names = [s.name for s in sources]
    return [
        replace(s, name=f"{s.name} ({s.parent_run_id[:8]})") if names.count(s.name) > 1 else s
        for s in sources
    ]


def verdict_reach(cfg: StudyConfig) -> str | None:
    """Why a study is too small for its verdict to say more than "inconclusive", in one line
    that says what to change; None when it can reach a verdict. Said before the study runs."""
    from analysis.policy import Policy  # scipy only: no pandas or matplotlib yet

    policy = Policy()
    seeds = len(cfg.sweep.seed)
    if cfg.tune.search == "optuna":
        if seeds < policy.min_seeds:
            return (
                f"{seeds} seed{'s' * (seeds != 1)} a point: the search's summary needs "
                f"{policy.min_seeds} (--set 'sweep.seed={list(range(policy.min_seeds))}')"
            )
        return None
    need = policy.seeds_for_divergence()
    if seeds < need:
        return (
            f"{seeds} seed{'s' * (seeds != 1)} a point: the verdict can be inconclusive at best; "
            f"robust needs {need} finished seeds a setting (fewer cannot rule out that it diverges "
            f"on {policy.divergence_margin:.0%} more of its seeds), e.g. --set "
            f"'sweep.seed={list(range(10))}'"
        )
    return None


def extend_hint(cfg: StudyConfig, output: Path) -> Callable[[Verdict], str | None]:
    """For a grid study's own report: when its verdict is inconclusive, the command that grows
    it to the seeds it needs (the most the verdict estimates, at least the fewest that can be
    robust), running only the new ones."""

    def hint(verdict: Verdict) -> str | None:
        seeds = list(cfg.sweep.seed)
        if verdict.decision != "inconclusive" or cfg.tune.search != "grid":
            return None
        table = verdict.table
        needed = table["seeds_needed"].dropna() if "seeds_needed" in table else []
        target = max([verdict.policy.seeds_for_divergence(), *(int(n) for n in needed)])
        if target <= len(seeds):
            return None
        more = [s for s in range(max(seeds) + 1 + target) if s not in seeds][: target - len(seeds)]
        grown = seeds + more
        return (
            f"To decide it, grow the study to {target} seeds a setting (only the new seeds "
            f"run, under the same parent run): `knee-study extend {output} --set "
            f"'sweep.seed={grown}'`"
        )

    return hint


def study_grid(cfg: StudyConfig) -> dict[str, list] | None:
    """The values a grid study swept, by param (explore fractions, peak LRs, budgets, decay
    shapes), for its report: a fraction or condition MLflow has no run of is named there (a
    study stopped before it got to them). None for a search."""
    if cfg.tune.search != "grid":
        return None
    return {k: v for k, v in cfg.swept().items() if k not in ("seed", "schedule")}


def after_study(cfg: StudyConfig, meta: folder.StudyMeta, output: Path) -> None:
    """The ended study's own report, written into the study folder and attached to its parent
    run; whatever goes wrong, one line on stderr with the command that retries it."""
    report_dir = output / folder.REPORT_DIR
    try:
        rules, swept = policy(cfg.objective), study_grid(cfg)
        hint = extend_hint(cfg, output)
        verdict = write(
            cfg.name, meta.tracking_uri, meta.parent_run_id, report_dir, rules, swept, hint
        )
    except Exception as error:  # a report bug must not hide the study's outcome
        first = one_line(error, expected=isinstance(error, BadInput))
        print(
            f"knee-study: no report: {first} (retry: knee-study report {output})", file=sys.stderr
        )
        return
    attach(meta.tracking_uri, meta.parent_run_id, report_dir, verdict)


def attach(tracking_uri: str, parent_run_id: str, report_dir: Path, verdict: Verdict) -> None:
    """The report's files onto the study's parent run (replacing an earlier copy), and its
    verdict as the run's tags, description and metrics, recorded even where the files cannot
    go (a server that does not serve artifacts); each failure is one line on stderr, not an
    error."""
    from study.study_run import attach_report, record_verdict  # MLflow: when a report is attached

    attached = False
    try:
        attach_report(tracking_uri, parent_run_id, report_dir)
        attached = True
    except Exception as error:  # e.g. a server that does not serve artifacts
        print(
            f"knee-study: report not attached to the MLflow run: {one_line(error)} "
            f"(it is in {report_dir})",
            file=sys.stderr,
        )
    try:
        record_verdict(tracking_uri, parent_run_id, verdict, attached)
    except Exception as error:
        print(
            f"knee-study: verdict not recorded on the MLflow run: {one_line(error)}",
            file=sys.stderr,
        )
