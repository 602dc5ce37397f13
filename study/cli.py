"""The ``knee-study`` command: run, resume, report and validate studies.

Exit status: 0 success, 1 some trials failed, 2 bad input (one line on stderr, nothing started),
130 stopped by Ctrl-C (resume it with ``knee-study resume DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from study import checkpoints, folder, reporting, storage
from study.config import ConfigError, StudyConfig, load_config
from study.ray_env import prepare_ray_env

EXIT_OK, EXIT_TRIALS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # Ray reads its environment when imported: settle local or cluster before anything
        # imports it (the tracking and launch modules do).
        prepare_ray_env(local=_is_local(_ray_address(args)))
        # With a server, MLflow prints two "View run" lines whenever a run ends: 200 lines
        # through the trial table of a 100-trial study. "browse it" names the experiment once.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating tables"
        from mlflow.exceptions import MlflowException

        from study.tracking import TrackingError

        try:
            return args.command(args)
        except TrackingError as error:
            raise _BadInput(error) from None
        except MlflowException as error:  # e.g. a deleted experiment of the name, no permission
            raise _BadInput(f"MLflow: {reporting.one_line(error, expected=True)}") from None
    except (ConfigError, folder.StudyFolderError, _BadInput) as error:
        print(f"knee-study: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


class _BadInput(Exception):
    """Bad input the commands find themselves (an address, a tracking store, a report's
    options): one line on stderr, exit status 2."""


def _ray_address(args: argparse.Namespace) -> str | None:
    """The cluster the command will join (--address, RAY_ADDRESS, the resumed study's), or None."""
    address = getattr(args, "address", None) or os.environ.get("RAY_ADDRESS")
    if args.command is resume and not address:
        return folder.open_study(Path(args.folder))[1].address
    return address


def _own_ray(address: str | None) -> bool:
    """Whether the command starts a Ray of its own (no other driver can join it)."""
    return address in (None, "local")


def _check_autoscaling(cfg: StudyConfig, address: str | None) -> None:
    if cfg.resources.autoscaling and _own_ray(address):
        raise _BadInput(
            "resources.autoscaling: a study's own local Ray never grows (trials would wait "
            "forever); join an autoscaling cluster with --address"
        )


def _check_address(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a cluster address that is malformed or where nothing listens: Ray raises a
    many-line ValueError on the one and waits minutes on the other."""
    if _own_ray(address) or address == "auto":  # "auto": Ray finds the head, or says it cannot
        return
    scheme = address.split("://", 1)[0] if "://" in address else ""
    if scheme in ("http", "https"):  # RAY_ADDRESS as `ray job submit` wants it
        raise _BadInput(
            f"--address: {address} is the dashboard's (jobs) address; a study joins the head at "
            "HOST:6379, ray://HOST:10001 or auto"
        )
    if scheme not in ("", "ray"):  # another kind of Ray address (a plugin's): Ray judges it
        return
    parts = _as_url(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host = port = None
    if not host or port is None:
        raise _BadInput(f"--address: expected HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise _BadInput(
            f"--address: nothing answers at {host}:{port} ({error.strerror or error}): is the "
            "cluster's head running?"
        ) from None


def _is_local(address: str | None) -> bool:
    """A local Ray, or a head on this machine's loopback: either way Ray must stay on 127.0.0.1.

    A driver that joins ``127.0.0.1:PORT`` without that setting swaps in the machine's outward
    address and waits forever for a head that listens on loopback only.
    """
    if _own_ray(address):
        return True
    return _as_url(address).hostname in ("127.0.0.1", "localhost", "::1")


def _as_url(address: str) -> SplitResult:
    """A Ray address as a URL, so a bare ``HOST:PORT`` parses like ``ray://HOST:PORT``."""
    return urlsplit(address if "://" in address else f"ray://{address}")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = Path(args.output or f"knee-runs/{cfg.folder_name}-{stamp}").resolve()
    try:  # Ray's state: the study folder, or its own folder in shared storage (NFS, S3)
        storage_path = storage.resolve_storage(args.storage) if args.storage else None
    except storage.StorageError as error:
        raise _BadInput(f"--storage: {error}") from None
    address = _ray_address(args)
    _check_address(address)
    _check_autoscaling(cfg, address)
    # Tune's folder is named after the study's alone wherever it may be shared: in shared
    # storage, and on a cluster other drivers join (Tune stages each driver's state under the
    # Ray session's artifacts/<second>/<name>: two studies started in one second there would
    # overwrite each other's). A local study's Ray is its own: there it is <output>/tune.
    shared = storage_path is not None or not _own_ray(address)
    tune_name = (
        f"{cfg.folder_name}-{stamp}-{uuid.uuid4().hex[:6]}" if shared else storage.DEFAULT_NAME
    )
    from study import tracking

    tracking_uri = tracking.absolute_uri(args.tracking_uri or tracking.default_tracking_uri(output))
    tracking.check_tracking_uri(tracking_uri)
    folder.check_new(output)
    _say_verdict_reach(cfg)

    ray, launch = _start_ray(address)
    plan = _plan(launch, cfg)
    if plan is None:
        return EXIT_BAD_INPUT
    folder.create(output, cfg)
    # Should setting up fail, nothing has run: no half-made study is left behind that `run`
    # would refuse and `resume` could not continue, and no parent run is left RUNNING.
    with folder.undone_on_error(output):
        params = {**cfg.trial_base(), **{f"sweep.{k}": v for k, v in cfg.swept().items()}}
        artifact_root = output / "mlartifacts" if tracking.is_local_store(tracking_uri) else None
        experiment_id, parent_run_id = tracking.start_study_run(
            tracking_uri, cfg.name, params, artifact_root
        )
        with tracking.failed_on_error(tracking_uri, parent_run_id):
            meta = folder.StudyMeta(
                tracking_uri, experiment_id, parent_run_id, address, storage_path, tune_name
            )
            folder.write_meta(output, meta)
            tracker = tracking.TrialTracker(
                tracking_uri, experiment_id, parent_run_id, run_tags={"search": cfg.tune.search}
            )
            tuner = launch.build_tuner(cfg, plan, output, tracker, storage_path, tune_name)
    at_once = f"{plan.concurrent_trials} at a time"
    if cfg.resources.autoscaling:
        at_once = f"up to {at_once} as the cluster grows"
    trials = f"{cfg.num_trials} trial{'s' * (cfg.num_trials != 1)}"
    print(f"knee-study: {trials}, {at_once} -> {output}")
    return _fit(tuner, cfg, output, meta, ray)


def resume(args: argparse.Namespace) -> int:
    cfg, meta = folder.open_study(Path(args.folder))
    output = Path(args.folder).resolve()
    tune_path = storage.experiment_path(output, meta.storage, meta.tune_name)
    checkpoints.check_resumable(tune_path)
    from study import tracking

    tracking.check_tracking_uri(meta.tracking_uri, must_exist=True)
    address = _ray_address(args)
    _check_address(address)
    _check_autoscaling(cfg, address)
    ray, launch = _start_ray(address)
    plan = _plan(launch, cfg, resumed=output)
    if plan is None:
        return EXIT_BAD_INPUT
    tracking.set_study_status(meta.tracking_uri, meta.parent_run_id, "RUNNING")
    print(f"knee-study: resuming {output}")
    return _fit(launch.restore_tuner(cfg, plan, tune_path), cfg, output, meta, ray)


def validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    print(f"{cfg.name}: valid, {cfg.num_trials} trials")
    _say_verdict_reach(cfg)
    return EXIT_OK


def _say_verdict_reach(cfg: StudyConfig) -> None:
    """A study too small for its verdict is told so before anything runs (and still runs)."""
    small = reporting.verdict_reach(cfg)
    if small:
        print(f"knee-study: note: {small}", file=sys.stderr)


def report(args: argparse.Namespace) -> int:
    from analysis.runs import AnalysisError

    if not 0 <= args.fraction <= 1:
        raise _BadInput(f"--fraction: an explore fraction is in [0, 1], got {args.fraction}")
    if not 0 < args.margin < 1:
        raise _BadInput(
            f"--margin: in accuracy units, 0 < margin < 1 (0.002 = 0.2 points), got {args.margin}"
        )
    if args.margin >= 0.05:  # 0.2 for "0.2 points" would judge at 20 points: say so, go on
        print(
            f"knee-study: note: --margin {args.margin} is {args.margin * 100:g} accuracy points",
            file=sys.stderr,
        )
    own_report = None  # the study's own report folder, when this report is the study's
    if args.study:
        cfg, meta = folder.open_study(Path(args.study), check_files=False)
        tracking_uri = args.tracking_uri or meta.tracking_uri
        experiment = args.experiment or cfg.name
        parent_run_id = args.parent_run
        if experiment == cfg.name and tracking_uri == meta.tracking_uri:
            parent_run_id = parent_run_id or meta.parent_run_id  # this study's runs only
            if parent_run_id == meta.parent_run_id:
                own_report = Path(args.study) / folder.REPORT_DIR
        # A report of other runs never lands over the study's own (nor on its MLflow run).
        out = Path(args.out or own_report or f"report-{experiment}")
    else:
        tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not tracking_uri or not args.experiment:
            raise _BadInput("report: name a study folder, or --experiment and --tracking-uri")
        experiment, parent_run_id = args.experiment, args.parent_run
        out = Path(args.out or f"report-{experiment}")
    if out.exists() and not out.is_dir():
        raise _BadInput(f"--out: {out} is a file; a report is a folder of files")
    from study.tracking import check_tracking_uri

    check_tracking_uri(tracking_uri, must_exist=True)
    try:
        reporting.write(experiment, tracking_uri, parent_run_id, out, args.fraction, args.margin)
    except AnalysisError as error:
        raise _BadInput(error) from None
    # The study's own report, rewritten (a retry, another margin): its MLflow copy follows.
    if own_report is not None and out.resolve() == own_report.resolve():
        reporting.attach(tracking_uri, parent_run_id, out)
    return EXIT_OK


def _start_ray(address: str | None):
    """Start (or join) Ray; returns the ray and study.launch modules."""
    import ray

    from study import launch

    # Tune looks for the per-trial result files we turn off (MLflow is the record) and warns
    # once per trial when it restores a study or builds its result grid; nothing is missing.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Tune's "Resume experiment with: Tuner.restore(...)": the CLI says how to continue a study.
    logging.getLogger("ray.tune.tune").addFilter(
        lambda record: not record.getMessage().startswith("Experiment has been interrupted")
    )
    if _own_ray(address):  # Ray says it turned token auth on: on a loopback-only Ray, as it should
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    try:
        # "local": a study without --address gets its own Ray, never one that happens to run
        # on this machine (a plain ray.init() joins the last `ray start` head it finds here).
        ray.init(
            address=address or "local",
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    except ValueError as error:  # an address Ray cannot parse
        raise _BadInput(f"--address: {reporting.one_line(error, expected=True)}") from None
    except ConnectionError as error:
        # A head that is down, or one with token auth (Ray's default) asked without the token.
        raise _BadInput(
            f"{error}: is its head running? With token auth (Ray's default) set "
            "RAY_AUTH_MODE=token and give its token (~/.ray/auth_token, RAY_AUTH_TOKEN or "
            "RAY_AUTH_TOKEN_PATH)"
        ) from None
    return ray, launch


def _plan(launch, cfg: StudyConfig, resumed: Path | None = None):
    """The resource plan, or None after one line on stderr when the cluster cannot run it."""
    import ray

    try:
        return launch.plan_resources(cfg, ray.cluster_resources())
    except launch.PlanError as error:
        where = ""
        if resumed is not None:  # resume takes no --set: its settings are the study's own file
            where = f"; a resumed study's settings are in {resumed / folder.CONFIG_FILE}"
        print(f"knee-study: error: {error}{where}", file=sys.stderr)
        ray.shutdown()
        return None


def _fit(tuner, cfg: StudyConfig, output: Path, meta: folder.StudyMeta, ray) -> int:
    from mlflow.exceptions import MlflowException

    from study.tracking import browse_hint, close_open_runs, set_study_status
    from trainables.results import is_final

    status, tracking_lost = "FAILED", None
    try:
        results = tuner.fit()
        finished = [r for r in results if r.error is None and is_final(r.metrics)]
        # Trials the scheduler (ASHA) stopped are done too, not interrupted: Tune marked their
        # last result done; their runs are KILLED and tagged stopped_early by the tracker.
        stopped = [
            r
            for r in results
            if r.error is None and r.metrics.get("done") and not is_final(r.metrics)
        ]
        errored = results.num_errors
        if errored:
            status, code = "FAILED", EXIT_TRIALS_FAILED
        elif len(finished) + len(stopped) < cfg.num_trials:
            status, code = "KILLED", EXIT_INTERRUPTED
        else:
            status, code = "FINISHED", EXIT_OK
    except KeyboardInterrupt:
        status, code = "KILLED", EXIT_INTERRUPTED
    except Exception as error:
        # The tracker could not log (after MLflow's own retries): Tune stops with its state
        # saved, and resume logs every epoch the runs lack from the trials' checkpoints.
        tracking_lost = _cause(error, MlflowException)
        if tracking_lost is None:
            raise
        status, code = "KILLED", EXIT_INTERRUPTED
    finally:
        # Whatever happened, nothing is left RUNNING in MLflow, if MLflow still answers; if
        # not, runs stay RUNNING until resume, as after a driver crash.
        with contextlib.suppress(MlflowException):
            close_open_runs(meta.tracking_uri, meta.experiment_id, meta.parent_run_id, "KILLED")
            set_study_status(meta.tracking_uri, meta.parent_run_id, status)
        ray.shutdown()

    if tracking_lost is not None:
        print(
            f"knee-study: MLflow failed: {reporting.one_line(tracking_lost, expected=True)}",
            file=sys.stderr,
        )
    outcome = "stopped" if status == "KILLED" else status.lower()  # MLflow's word, not ours
    print(f"knee-study: study {outcome}: results in {output}")
    print(f"  MLflow store: {meta.tracking_uri}")
    print(f"  browse it:    {browse_hint(meta.tracking_uri, meta.experiment_id)}")
    if code == EXIT_TRIALS_FAILED:
        tune_path = storage.experiment_path(output, meta.storage, meta.tune_name)
        print(f"  {errored} trial(s) failed; their errors are under {tune_path}")
    if code == EXIT_INTERRUPTED:
        print(f"  continue it:  knee-study resume {output}")
    else:
        reporting.after_study(cfg, meta, output)
    return code


def _cause(error: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The ``kind`` error in ``error``'s chain: Tune re-raises a callback's error as a TuneError
    raised while handling it."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    return error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knee-study", description="Hyper-parameter studies of the Knee LR schedule."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def add_config_args(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "config", nargs="?", help="study YAML (default: the embedded digits_quick.yaml)"
        )
        command.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, value as YAML: --set sweep.seed=[0,1]",
        )

    run_cmd = commands.add_parser("run", help="run a study")
    add_config_args(run_cmd)
    run_cmd.add_argument("--output", help="study folder (default: knee-runs/NAME-TIMESTAMP)")
    run_cmd.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite in the study folder)"
    )
    run_cmd.add_argument("--address", help="Ray cluster to join (default: a local Ray)")
    run_cmd.add_argument(
        "--storage",
        metavar="URI",
        help="where Ray keeps trial checkpoints and its state: a path every node sees (NFS) or "
        "s3://BUCKET/PATH, gs://BUCKET/PATH (default: the study folder)",
    )
    run_cmd.set_defaults(command=run)

    resume_cmd = commands.add_parser("resume", help="continue a study whose driver stopped")
    resume_cmd.add_argument("folder", help="the study's output folder")
    resume_cmd.add_argument("--address", help="Ray cluster to join (default: as the run did)")
    resume_cmd.set_defaults(command=resume)

    report_cmd = commands.add_parser(
        "report", help="write a study's robustness report (Markdown, HTML, CSV, PNG)"
    )
    report_cmd.add_argument("study", nargs="?", help="a study folder: its MLflow store and runs")
    report_cmd.add_argument("--experiment", help="MLflow experiment (default: the study's name)")
    report_cmd.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the study's, or MLFLOW_TRACKING_URI)"
    )
    report_cmd.add_argument(
        "--out",
        help="report folder (default: STUDY/report for the study's own runs, which also goes "
        "onto its MLflow run; else ./report-EXPERIMENT)",
    )
    report_cmd.add_argument(
        "--parent-run",
        metavar="RUN_ID",
        help="the study's parent run, when several studies share the experiment",
    )
    report_cmd.add_argument(
        "--margin",
        type=float,
        default=0.002,
        help="how close to the best explore fraction counts as robust, in accuracy "
        "(default 0.002 = 0.2 points)",
    )
    report_cmd.add_argument(
        "--fraction", type=float, default=0.5, help="the explore fraction judged (default 0.5)"
    )
    report_cmd.set_defaults(command=report)

    validate_cmd = commands.add_parser("validate", help="check a study config, run nothing")
    add_config_args(validate_cmd)
    validate_cmd.set_defaults(command=validate)
    return parser


if __name__ == "__main__":
    sys.exit(main())
