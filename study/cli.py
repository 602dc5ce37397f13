"""The ``knee-study`` command: run, resume, extend, report and validate studies.

Exit status: 0 success (a resumed study that had already finished too: nothing ran), 1 some
trials failed, 2 bad input (one line on stderr, nothing started), 130 stopped by Ctrl-C or a
lost tracking store (resume it with ``knee-study resume DIR``).

The arguments are read before anything else is imported: each command imports what it needs
(:mod:`study.study` brings torch, MLflow and, once connected, Ray).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from study.errors import BadInput, one_line
from study.outcome import Ending, Outcome

if TYPE_CHECKING:
    from study.config import StudyConfig
    from study.study import Study

EXIT_OK, EXIT_TRIALS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUS = {
    Ending.FINISHED: EXIT_OK,
    Ending.ALREADY_FINISHED: EXIT_OK,  # a resumed study that had finished: nothing to do
    Ending.TRIALS_FAILED: EXIT_TRIALS_FAILED,
    Ending.STOPPED: EXIT_INTERRUPTED,  # resume it
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is report:  # `report A --margin 0.1 B`: argparse leaves B over
        args.study += [item for item in extra if not item.startswith("-")]
        extra = [item for item in extra if item.startswith("-")]
    # With a server, MLflow prints two "View run" lines whenever a run ends: 200 lines
    # through the trial table of a 100-trial study. "browse it" names the experiment once.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating tables"
    try:
        _check_cut_lists(args, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args.command(args)
    except BadInput as error:
        return _bad_input(str(error))
    except Exception as error:  # e.g. a deleted experiment of the name, no permission
        if not _is_mlflow_error(error):
            raise
        return _bad_input(f"MLflow: {one_line(error, expected=True)}")


def exit_code(outcome: Outcome) -> int:
    """The exit status of a study's outcome."""
    return EXIT_STATUS[outcome.ending]


def _bad_input(message: str) -> int:
    print(f"knee-study: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _is_mlflow_error(error: BaseException) -> bool:
    """An MlflowException, known without importing MLflow: none is raised before it is."""
    exceptions = sys.modules.get("mlflow.exceptions")
    return exceptions is not None and isinstance(error, exceptions.MlflowException)


_LIST_END = re.compile(r"[^=\[]*[\]}]")  # "1]", "cosine]": the last piece of a list cut short


def _check_cut_lists(args: argparse.Namespace, extra: Sequence[str]) -> None:
    """``--set sweep.seed=[0, 1]`` unquoted reaches us as ``sweep.seed=[0,`` and a stray
    ``1]`` (taken for the config file, or left over): say to quote it."""
    config = getattr(args, "config", None)
    pieces = [*extra, *([config] if config and not Path(config).exists() else [])]
    tails = [piece for piece in pieces if _LIST_END.fullmatch(piece)]
    if not tails:
        return
    cut = [item for item in getattr(args, "set", []) if item.count("[") > item.count("]")]
    whole = f"{cut[-1]} {' '.join(tails)}" if cut else f"KEY=[... {tails[-1]}"
    raise BadInput(
        f"{tails[-1]!r} is the end of a --set list the shell cut at its spaces: quote the "
        f'whole item, e.g. --set "{whole}"'
    )


def run(args: argparse.Namespace) -> int:
    return exit_code(_create(args).fit())


def validate(args: argparse.Namespace) -> int:
    study = _create(args, say=False)
    trials = study.cfg.num_trials
    print(f"{study.cfg.name}: valid, {trials} trial{'s' * (trials != 1)}")
    _say_verdict_reach(study.cfg)
    return EXIT_OK


def _create(args: argparse.Namespace, say: bool = True) -> Study:
    """The study `run` would make, every input checked (validate checks the same)."""
    from study.config import load_config
    from study.study import Study

    study = Study.create(
        load_config(args.config, args.set),
        args.output,
        tracking_uri=args.tracking_uri,
        address=args.address,
        storage=args.storage,
    )
    if say:
        _say_verdict_reach(study.cfg)
    return study


def _say_verdict_reach(cfg: StudyConfig) -> None:
    """What the study will do that its keys do not say, and whether it is too small for its
    verdict: one line each, before anything runs (it still runs)."""
    from study import reporting

    small = reporting.verdict_reach(cfg)
    for note in [*cfg.notes(), *([small] if small else [])]:
        print(f"knee-study: note: {note}", file=sys.stderr)


def resume(args: argparse.Namespace) -> int:
    from study.study import Study

    study = Study.open(args.folder, tracking_uri=args.tracking_uri, address=args.address)
    return exit_code(study.resume())


def extend(args: argparse.Namespace) -> int:
    from study.study import Study

    study = Study.open(args.folder, address=args.address)
    return exit_code(study.extend(args.set))


def report(args: argparse.Namespace) -> int:
    if not 0 <= args.fraction <= 1:
        raise BadInput(f"--fraction: an explore fraction is in [0, 1], got {args.fraction}")
    if args.margin is not None and not args.margin > 0:
        raise BadInput(f"--margin: must be > 0, in the objective's units, got {args.margin}")
    options = {"fraction": args.fraction, "margin": args.margin, "metric": args.metric}
    options["mode"] = args.mode
    if len(args.study) > 1 or len(args.parent_run) > 1:
        return report_across(args, options)
    parent_run = args.parent_run[0] if args.parent_run else None
    if args.study:
        from study.study import Study

        study = Study.open(args.study[0], check_files=False)
        _check_margin(args.margin, args.metric or study.cfg.objective.metric)
        study.report(args.out, args.experiment, args.tracking_uri, parent_run, **options)
        return EXIT_OK
    from study import reporting

    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri or not args.experiment:
        raise BadInput("report: name a study folder, or --experiment and --tracking-uri")
    _check_margin(args.margin, args.metric or "test_acc")
    out = Path(args.out or f"report-{args.experiment}")
    rules = reporting.policy(None, **options)
    reporting.write(args.experiment, tracking_uri, parent_run, out, rules)
    return EXIT_OK


def report_across(args: argparse.Namespace, options: dict) -> int:
    """One report over several studies: study folders (each its own store), or parent runs of
    the store ``--tracking-uri`` names."""
    from study import folder, reporting

    if args.experiment:
        raise BadInput("report: --experiment names one study's runs; across studies name each")
    if args.study and args.parent_run:
        raise BadInput("report: across studies, name study folders or --parent-run runs, not both")
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if args.parent_run and not tracking_uri:
        raise BadInput("report: --parent-run across studies needs --tracking-uri, the store")
    if args.study and args.tracking_uri:
        raise BadInput(
            "report: study folders know their stores; --tracking-uri is for --parent-run"
        )
    reporting.check_distinct(args.parent_run)  # before any is looked up
    out = Path(args.out or "report-across")
    for path in args.study:  # its own report's figures would sit beside the one across studies
        if out.resolve() == (Path(path) / "report").resolve():
            raise BadInput(f"report: --out {out} is {path}'s own report; choose another folder")
    sources = []
    for path in args.study:
        cfg, meta = folder.open_study(Path(path), check_files=False)
        sources.append(reporting.folder_source(cfg, meta, Path(path).resolve().name))
    sources += [reporting.parent_source(tracking_uri, run) for run in args.parent_run]
    metrics = {args.metric or getattr(s.objective, "metric", "test_acc") for s in sources}
    for metric in sorted(metrics):  # one note per metric, not per study
        _check_margin(args.margin, metric)
    reporting.write_across(sources, out, **options)
    return EXIT_OK


def _check_margin(margin: float | None, metric: str) -> None:
    """An accuracy margin is a fraction: 1 or more can never be beaten, and 0.2 meant as "0.2
    points" would judge at 20 points (said, and the report goes on)."""
    if margin is None or not metric.endswith("acc"):
        return
    if margin >= 1:
        raise BadInput(
            f"--margin: {metric} is a fraction, 0 < margin < 1 (0.002 = 0.2 points), got {margin}"
        )
    if margin >= 0.05:
        print(
            f"knee-study: note: --margin {margin} is {margin * 100:g} accuracy points",
            file=sys.stderr,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knee-study", description="Hyper-parameter studies of the Knee LR schedule."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def add_set(command: argparse.ArgumentParser, help: str) -> None:
        command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)

    def add_study_args(command: argparse.ArgumentParser) -> None:
        """What `run` takes, and `validate` checks the same way."""
        command.add_argument(
            "config", nargs="?", help="study YAML (default: the embedded digits_quick.yaml)"
        )
        add_set(
            command, "override a config key, value as YAML; quote lists: --set 'sweep.seed=[0, 1]'"
        )
        command.add_argument("--output", help="study folder (default: knee-runs/NAME-TIMESTAMP)")
        command.add_argument(
            "--tracking-uri", help="MLflow tracking URI (default: sqlite in the study folder)"
        )
        command.add_argument("--address", help="Ray cluster to join (default: a local Ray)")
        command.add_argument(
            "--storage",
            metavar="URI",
            help="where Ray keeps trial checkpoints and its state: a path every node sees (NFS) "
            "or s3://BUCKET/PATH, gs://BUCKET/PATH (default: the study folder)",
        )

    run_cmd = commands.add_parser("run", help="run a study")
    add_study_args(run_cmd)
    run_cmd.set_defaults(command=run)

    resume_cmd = commands.add_parser("resume", help="continue a study whose driver stopped")
    resume_cmd.add_argument("folder", help="the study's output folder (moved or copied: fine)")
    resume_cmd.add_argument("--address", help="Ray cluster to join (default: as the run did)")
    resume_cmd.add_argument(
        "--tracking-uri",
        help="where the study's MLflow store is now, if it moved elsewhere (recorded in the "
        "study; default: its own store, or the one it ran with)",
    )
    resume_cmd.set_defaults(command=resume)

    extend_cmd = commands.add_parser(
        "extend", help="grow a finished study: run only the grid points the --set values add"
    )
    extend_cmd.add_argument("folder", help="the study's output folder")
    add_set(extend_cmd, "sweep values to add, the old ones kept: --set 'sweep.seed=[0, 1, 2, 3]'")
    extend_cmd.add_argument("--address", help="Ray cluster to join (default: as the run did)")
    extend_cmd.set_defaults(command=extend)

    report_cmd = commands.add_parser(
        "report",
        help="write a study's robustness report (Markdown, HTML, CSV, PNG), or one across "
        "several studies",
    )
    report_cmd.add_argument(
        "study",
        nargs="*",
        help="a study folder: its MLflow store and runs; two or more: one report across them",
    )
    report_cmd.add_argument("--experiment", help="MLflow experiment (default: the study's name)")
    report_cmd.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the study's, or MLFLOW_TRACKING_URI)"
    )
    report_cmd.add_argument(
        "--out",
        help="report folder (default: STUDY/report for the study's own runs, which also goes "
        "onto its MLflow run; else ./report-EXPERIMENT; across studies ./report-across)",
    )
    report_cmd.add_argument(
        "--parent-run",
        metavar="RUN_ID",
        action="append",
        default=[],
        help="the study's parent run, when several studies share the experiment; repeated "
        "(with --tracking-uri): one report across those studies",
    )
    report_cmd.add_argument(
        "--margin",
        type=float,
        help="how close to the best explore fraction counts as robust, in the metric's units "
        "(default: the study's objective.margin, else 0.002 = 0.2 accuracy points)",
    )
    report_cmd.add_argument(
        "--metric",
        help="the metric judged (default: the study's objective.metric, else test_acc)",
    )
    report_cmd.add_argument(
        "--mode",
        choices=("max", "min"),
        help="whether higher or lower --metric is better (default: the study's objective, "
        "else from the metric's name: min for losses and perplexity)",
    )
    report_cmd.add_argument(
        "--fraction", type=float, default=0.5, help="the explore fraction judged (default 0.5)"
    )
    report_cmd.set_defaults(command=report)

    validate_cmd = commands.add_parser(
        "validate", help="check a study config and the options run takes, run nothing"
    )
    add_study_args(validate_cmd)
    validate_cmd.set_defaults(command=validate)
    return parser


if __name__ == "__main__":
    sys.exit(main())
