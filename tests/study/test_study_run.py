"""The study's parent run: one experiment per name however studies race to make it, every open
child closed when a study stops, and a copied study's artifacts in its own folder."""

import json

from mlflow import MlflowClient

from study.stores import runs_page
from study.study_run import (
    RUNS_VIEW,
    close_open_runs,
    rehome_artifacts,
    save_runs_view,
    start_study_run,
)
from trainables.results import PARENT_RUN_TAG


def test_two_studies_of_one_name_starting_together_share_the_experiment(tmp_path, monkeypatch):
    """The second study looked before the first one created the experiment, then lost the race
    to create it: it uses the first one's experiment, with a parent run of its own."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first_experiment, first_parent = start_study_run(uri, "together", {})
    real_lookup, lookups = MlflowClient.get_experiment_by_name, []

    def lookup(self, name):  # the first look comes before the other study's create
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", lookup)

    experiment, parent = start_study_run(uri, "together", {})

    assert experiment == first_experiment
    assert parent != first_parent
    assert len(lookups) == 2  # it lost the race and looked again


def test_closing_a_stopped_study_closes_every_open_run_on_every_page(tmp_path, monkeypatch):
    """250 open runs from a store that answers 100 a page: all closed; a finished run, the
    parent and another study's runs are left as they were."""
    search_runs = MlflowClient.search_runs

    def hundred_a_page(self, *args, max_results=1000, **kwargs):
        return search_runs(self, *args, max_results=min(max_results, 100), **kwargs)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("study")
    parent, other = (client.create_run(experiment).info.run_id for _ in range(2))
    child = {PARENT_RUN_TAG: parent}
    open_ids = {client.create_run(experiment, tags=child).info.run_id for _ in range(250)}
    done = client.create_run(experiment, tags=child).info.run_id
    client.set_terminated(done, status="FINISHED")
    others = client.create_run(experiment, tags={PARENT_RUN_TAG: other}).info.run_id
    monkeypatch.setattr(MlflowClient, "search_runs", hundred_a_page)

    assert close_open_runs(uri, experiment, parent, "KILLED") == 250

    runs = search_runs(client, [experiment], max_results=1000)
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert {statuses[i] for i in open_ids} == {"KILLED"}
    assert statuses[done] == "FINISHED"
    assert statuses[parent] == statuses[others] == "RUNNING"


def test_a_copied_stores_artifacts_are_pointed_at_the_copys_folder(tmp_path):
    """The copy's sqlite file still names the original's artifact folder: rehomed, the
    experiment and every run of it name the copy's, other experiments are left alone."""
    original = tmp_path / "original"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "study", {}, original / "mlartifacts")
    other_id, other_parent = start_study_run(uri, "other", {}, original / "elsewhere")
    copy = tmp_path / "copy" / "mlartifacts"
    client = MlflowClient(uri)
    before = client.get_run(parent).info.artifact_uri
    assert before.startswith((original / "mlartifacts").as_uri())

    assert rehome_artifacts(uri, experiment_id, copy) is True

    assert client.get_experiment(experiment_id).artifact_location == copy.as_uri()
    assert client.get_run(parent).info.artifact_uri == before.replace(
        (original / "mlartifacts").as_uri(), copy.as_uri()
    )
    assert client.get_run(other_parent).info.artifact_uri.startswith(
        (original / "elsewhere").as_uri()
    )
    assert rehome_artifacts(uri, experiment_id, copy) is False  # already there
    assert rehome_artifacts(uri, other_id, copy) is False  # not a folder of that name


def test_the_saved_runs_view_is_the_envelope_mlflows_ui_reads(tmp_path):
    """MLflow 3.17's UI keeps a saved view as the experiment tag ``mlflow.sharedViewState.KEY``:
    a JSON envelope with a string ``name``, a number ``createdAt`` and the view's state as a
    JSON string (its parser rejects anything else); a link opens it by ``viewStateShareKey``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment, _ = start_study_run(uri, "viewed", {})
    save_runs_view(uri, experiment, "val_loss")
    tags = MlflowClient(uri).get_experiment(experiment).tags
    envelope = json.loads(tags[f"mlflow.sharedViewState.{RUNS_VIEW}"])
    assert isinstance(envelope["name"], str)
    assert isinstance(envelope["createdAt"], int)
    columns = json.loads(envelope["state"])["selectedColumns"]
    assert {"tags.`verdict`", "metrics.`val_loss`", "params.`explore_fraction`"} <= set(columns)
    link = runs_page("http://127.0.0.1:5000", experiment, RUNS_VIEW)
    assert link.endswith(f"/runs?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW}")


def test_the_study_run_names_its_source_as_its_trials_do(tmp_path):
    """The Runs page's Source column: the study's own row says knee-study, as its trials'."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, parent = start_study_run(uri, "sourced", {})
    tags = MlflowClient(uri).get_run(parent).data.tags
    assert tags["mlflow.source.name"] == "knee-study"
    assert tags["mlflow.source.type"] == "LOCAL"
