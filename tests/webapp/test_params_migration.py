"""Migration 0005: jobs (and batches) stored before StyleConfig.layer_normalisation existed keep
meaning what they ran with, the seed's formula, so that "run again" reproduces them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from stylize.config import NORMALISATION_BEFORE_THE_OPTION, StyleConfig

BEFORE = ("webapp", "0004_worker_machine_and_unit_patches")
AFTER = ("webapp", "0005_params_layer_normalisation")


def migrate(target) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return MigrationExecutor(connection)


def old_params(**changes) -> dict:
    """A job's params as stored before the option: every other option, λ on the seed's scale."""
    params = StyleConfig(layer_normalisation="seed", **changes).to_dict()
    del params["layer_normalisation"]
    return params


@pytest.mark.django_db(transaction=True)
def test_old_jobs_and_batches_get_the_seeds_normalisation_and_lose_it_when_reversed():
    executor = migrate(BEFORE)
    try:
        apps = executor.loader.project_state([BEFORE]).apps
        User = apps.get_model("auth", "User")
        StyleImage, StyleJob, Batch = (apps.get_model("webapp", name) for name in ("StyleImage", "StyleJob", "Batch"))
        owner = User.objects.create(username="old-timer")
        image = StyleImage.objects.create(owner=owner, file="uploads/a.png", sha256="a" * 64, width=8, height=8)
        batch = Batch.objects.create(owner=owner, params={"params": {"iterations": 2}, "preset": "fast"})
        empty_batch = Batch.objects.create(owner=owner)  # params {}: nothing to say
        old = StyleJob.objects.create(owner=owner, content=image, batch=batch,
                                      params=old_params(style_layers={"relu1_1": 1000.0, "relu4_1": 2.0}))
        already = StyleJob.objects.create(owner=owner, content=image,
                                          params={**old_params(), "layer_normalisation": "balanced"})

        executor = migrate(AFTER)
        from webapp.models import Batch as NewBatch, StyleJob as NewJob

        job = NewJob.objects.get(pk=old.pk)
        assert job.params["layer_normalisation"] == NORMALISATION_BEFORE_THE_OPTION == "seed"
        assert job.params == {**old_params(style_layers={"relu1_1": 1000.0, "relu4_1": 2.0}),
                              "layer_normalisation": "seed"}  # nothing else changed
        config = job.config()  # valid again: λ 1000 is within the seed's bound
        assert config.layer_normalisation == "seed" and config.style_layers["relu1_1"] == 1000.0
        assert NewJob.objects.get(pk=already.pk).params["layer_normalisation"] == "balanced"  # kept
        assert NewBatch.objects.get(pk=batch.pk).params == {
            "params": {"iterations": 2, "layer_normalisation": "seed"}, "preset": "fast"}
        assert NewBatch.objects.get(pk=empty_batch.pk).params == {}

        executor = migrate(BEFORE)
        assert "layer_normalisation" not in NewJob.objects.get(pk=old.pk).params
        assert NewJob.objects.get(pk=old.pk).params == old_params(style_layers={"relu1_1": 1000.0, "relu4_1": 2.0})
        assert NewJob.objects.get(pk=already.pk).params["layer_normalisation"] == "balanced"
        assert NewBatch.objects.get(pk=batch.pk).params == {"params": {"iterations": 2}, "preset": "fast"}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
