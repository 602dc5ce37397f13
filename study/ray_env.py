"""Environment Ray must see before it is imported: it reads these variables at import time."""

from __future__ import annotations

import os
import sys

# Each a measured cost or risk: no usage reporting to the outside; save Tune's experiment state
# after every result, so that resume never re-runs a finished trial (measured: with Tune's
# default period a driver killed mid-study re-reported a trial's first epochs after resume; on
# 12 trials x 30 checkpoints saving after every result cost nothing measurable; a user's own
# value wins: a study of thousands of trials saves less often, see README);
# the classic trial table (one compact table, refreshed) instead of a box per trial result; no
# result.json / progress.csv / TensorBoard files per trial (MLflow is the study's record, and
# each costs the driver a write per result); no stop of the whole study when a trial's last
# result lacks the metric ASHA or Optuna select by (a trial that diverged in its first epoch, or
# failed at once, has none: ASHA then skips the result and the searcher scores it worst, while
# a loop that never reports the metric fails on its first report, see study.trial).
_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_GLOBAL_CHECKPOINT_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
}


def prepare_ray_env(local: bool) -> None:
    """Set Ray's environment for a study; call before the first ``import ray``.

    ``local`` studies start their own Ray instance: it then binds 127.0.0.1 only (a plain local
    ``ray.init()`` listens on every interface and talks over the machine's outward address).
    A driver joining a cluster leaves that choice to the cluster.
    """
    wanted = {key: os.environ.get(key, value) for key, value in _DEFAULTS.items()}
    if local:
        wanted["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "ray" in sys.modules and any(os.environ.get(k) != v for k, v in wanted.items()):
        raise RuntimeError("prepare_ray_env() must run before ray is imported")
    os.environ.update(wanted)
