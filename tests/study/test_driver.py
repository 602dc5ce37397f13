"""The resource plan: how trials pack onto a cluster, checked without one (and without a GPU)."""

import pytest

from study.config import load_config, trial_label
from study.driver import PlanError, plan_resources


def _config(*overrides: str):
    return load_config(None, ["sweep.seed=[0, 1, 2, 3, 4, 5, 6, 7]", *overrides])


def test_fractional_gpus_pack_several_trials_on_one_gpu_with_a_memory_cap():
    cfg = _config(
        "resources.gpus_per_trial=0.25", "resources.cpus_per_trial=2", "resources.max_concurrent=64"
    )
    plan = plan_resources(cfg, {"CPU": 16.0, "GPU": 1.0})
    assert plan.concurrent_trials == 4  # four quarters of one GPU; CPUs would allow 8
    assert plan.gpu_memory_fraction == 0.25
    assert plan.as_tune_resources() == {"cpu": 2, "gpu": 0.25}


def test_whole_gpus_are_not_capped_and_cpus_can_be_the_limit():
    cfg = _config(
        "resources.gpus_per_trial=1", "resources.cpus_per_trial=4", "resources.max_concurrent=64"
    )
    plan = plan_resources(cfg, {"CPU": 8.0, "GPU": 4.0})
    assert plan.concurrent_trials == 2
    assert plan.gpu_memory_fraction is None


def test_max_concurrent_and_the_number_of_trials_cap_the_plan():
    cfg = _config("resources.max_concurrent=3")
    assert plan_resources(cfg, {"CPU": 64.0}).concurrent_trials == 3
    small = load_config(
        None, ["sweep.seed=[0]", "sweep.peak_lr=[0.1]", "sweep.explore_fraction=[0.5]"]
    )
    assert plan_resources(small, {"CPU": 64.0}).concurrent_trials == 1


@pytest.mark.parametrize(
    ("overrides", "cluster", "message"),
    [
        (["resources.gpus_per_trial=0.5"], {"CPU": 2.0}, "resources.gpus_per_trial.*cluster has 0"),
        (["resources.cpus_per_trial=4"], {"CPU": 2.0}, "resources.cpus_per_trial.*cluster has 2"),
    ],
)
def test_a_study_the_cluster_cannot_place_is_refused(overrides, cluster, message):
    with pytest.raises(PlanError, match=message):
        plan_resources(_config(*overrides), cluster)


@pytest.mark.parametrize(
    ("config", "label"),
    [
        (
            {"schedule": "knee", "explore_fraction": 0.5, "peak_lr": 0.1, "seed": 2, "epochs": 40},
            "knee explore=0.5 lr=0.1 seed=2 epochs=40",
        ),
        (
            {
                "schedule": "knee",
                "decay": "cosine",
                "explore_fraction": 0.6027634,
                "peak_lr": 0.0638,
                "seed": 0,
                "epochs": 3,
            },
            "knee-cosine explore=0.6028 lr=0.0638 seed=0 epochs=3",
        ),
        (
            {
                "schedule": "onecycle",
                "explore_fraction": None,
                "decay": None,
                "peak_lr": 0.2,
                "seed": 1,
                "epochs": 20,
            },
            "onecycle lr=0.2 seed=1 epochs=20",
        ),
    ],
)
def test_trial_label_names_what_tells_trials_apart(config, label):
    assert trial_label(config) == label


def test_an_autoscaling_cluster_is_not_sized_by_the_nodes_up_at_start():
    """No GPU node yet (the autoscaler starts them for pending trials): nothing is refused, and
    every trial may be pending at once unless max_concurrent says otherwise."""
    cfg = _config(
        "resources.gpus_per_trial=1", "resources.autoscaling=true", "resources.max_concurrent=null"
    )
    plan = plan_resources(cfg, {"CPU": 2.0})
    assert plan.concurrent_trials == cfg.num_trials == 5 * 2 * 8
    assert plan.as_tune_resources() == {"cpu": 1.0, "gpu": 1.0}
    capped = _config(
        "resources.gpus_per_trial=0.5",
        "resources.autoscaling=true",
        "resources.max_concurrent=6",
    )
    plan = plan_resources(capped, {"CPU": 0.0})
    assert plan.concurrent_trials == 6
    assert plan.gpu_memory_fraction == 0.5


def test_a_fixed_cluster_that_cannot_place_a_trial_points_at_autoscaling():
    with pytest.raises(PlanError, match=r"an autoscaling cluster: set resources\.autoscaling=true"):
        plan_resources(_config("resources.gpus_per_trial=1"), {"CPU": 2.0})


ASHA = ["tune.scheduler=asha", "tune.grace_period=90", "sweep.explore_fraction=[0.0, 0.5]"]


@pytest.mark.parametrize(
    ("objective", "metric", "mode"),
    [
        ("{}", "val_acc", "max"),  # the default objective, test_acc: chosen on validation
        ("{metric: val_loss, mode: min}", "val_loss", "min"),
        ("{metric: test_loss}", "val_loss", "min"),
    ],
)
def test_asha_and_optuna_select_by_the_objective_on_the_validation_split(objective, metric, mode):
    from study.driver import _trial_scheduler
    from study.search import search_algorithm

    asha = load_config(None, [*ASHA, f"objective={objective}"])
    scheduler = _trial_scheduler(asha)
    assert (scheduler._metric, scheduler._mode) == (metric, mode)
    # Every report of a trial ASHA judges must carry what it judges by; a FIFO grid's need not.
    assert asha.selection_needed
    assert not load_config(None, [f"objective={objective}"]).selection_needed
    search = load_config(
        None,
        [
            "tune.search=optuna",
            "tune.num_samples=2",
            "sweep.explore_fraction=[0, 1]",
            "sweep.peak_lr=[0.01, 0.3]",
            f"objective={objective}",
        ],
    )
    optuna = search_algorithm(search, 1)[0].searcher.searcher  # ConcurrencyLimiter > seeds
    assert (optuna.metric, optuna.mode) == (metric, mode)
