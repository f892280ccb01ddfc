"""Creating a job: params validated into StyleConfig, inputs checked, a cap per person, one message on commit."""

from __future__ import annotations

import pytest

import stylize
from webapp.jobs import lifecycle
from webapp.queue import lanes
from webapp.models import StyleJob

pytestmark = pytest.mark.django_db


def create(user, content, styles, params, **kwargs):
    return lifecycle.create_job(user, content, styles, params, **kwargs)


def test_a_new_job_is_queued_with_its_full_validated_params(user, content, style, tiny_params):
    job = create(user, content, [style], tiny_params)
    assert job.status == StyleJob.Status.QUEUED
    assert job.params == stylize.StyleConfig.from_dict(tiny_params).to_dict()
    assert job.params["style_layers"] == {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2,
                                          "relu5_1": 0.2}
    assert job.config().size == 48
    assert job.max_attempts == 3 and job.attempts == 0


def test_a_preset_fills_in_what_the_params_leave_out(user, content, style):
    job = create(user, content, [style], {"iterations": 3}, preset="fast")
    assert (job.params["size"], job.params["iterations"]) == (256, 3)


def test_the_message_is_sent_on_commit_with_the_job_id_only(user, content, style, tiny_params, sent,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = create(user, content, [style], tiny_params, priority=9)
    assert sent == []  # nothing leaves before the row is committed
    for callback in callbacks:
        callback()
    # No time limits in the message: the worker's own apply (dispatch.py).
    assert sent == [{"args": [str(job.id)], "task_id": job.task_id, "queue": "gpu", "priority": 0,
                     "countdown": None, "time_limit": None, "soft_time_limit": None}]


@pytest.mark.parametrize("priority, lane", [(9, 0), (4, 0), (1, 3), (0, 4), (-1, 5), (-5, 9), (-9, 9)])
def test_a_higher_priority_takes_a_redis_lane_served_sooner(priority, lane):
    assert lanes.lane(priority) == lane


def test_styles_keep_their_order(user, content, style, second_style, tiny_params):
    job = create(user, content, [second_style, style], {**tiny_params, "style_blend": [3, 1]})
    assert job.ordered_styles() == [second_style, style]
    assert job.config().blend_weights(2) == [0.75, 0.25]


@pytest.mark.parametrize("params, field", [
    ({"size": 10}, "size"),
    ({"size": 4000}, "size"),  # under the engine's maximum, over this server's
    ({"iterations": "many"}, "iterations"),
    ({"style_layers": {"relu9_9": 1}}, "style_layers"),
    ({"colour": "blue"}, "colour"),
    ({"device": "cuda:0"}, "device"),
    ({"weights": "/etc/passwd"}, "weights"),
    ({"init": "image"}, "init"),
    ({"style_blend": [1, 2]}, "style_blend"),  # two weights for one style
    ("size=48", "params"),
])
def test_it_rejects_bad_params_naming_the_field(user, content, style, params, field):
    with pytest.raises(stylize.ConfigError) as error:
        create(user, content, [style], params)
    assert error.value.field == field
    assert not StyleJob.objects.exists()


def test_it_rejects_another_persons_images(user, make_user, upload, content, tiny_params):
    someone_else = make_user()
    their_style = upload(someone_else, "style", "the_scream.jpg")
    with pytest.raises(lifecycle.JobInputError, match="style image was not found") as error:
        create(user, content, [their_style], tiny_params)
    assert error.value.field == "styles"
    with pytest.raises(lifecycle.JobInputError, match="content image was not found"):
        create(someone_else, content, [their_style], tiny_params)


def test_it_needs_at_least_one_style_and_at_most_the_limit(user, content, style, tiny_params, settings):
    with pytest.raises(lifecycle.JobInputError, match="at least one style"):
        create(user, content, [], tiny_params)
    settings.JOB_MAX_STYLES = 2
    with pytest.raises(lifecycle.JobInputError, match="at most 2 style"):
        create(user, content, [style] * 3, tiny_params)


def test_it_rejects_a_priority_out_of_range(user, content, style, tiny_params):
    with pytest.raises(lifecycle.JobInputError, match="Priority"):
        create(user, content, [style], tiny_params, priority=10)


def test_a_person_may_have_only_so_many_jobs_queued_or_running(user, make_user, upload, content, style,
                                                               tiny_params, settings):
    settings.JOBS_PER_USER = 2
    first = create(user, content, [style], tiny_params)
    create(user, content, [style], tiny_params)
    with pytest.raises(lifecycle.JobLimitReached, match="already have 2 jobs queued or running"):
        create(user, content, [style], tiny_params)
    # Other people are not affected, and a finished job frees its place.
    other = make_user()
    create(other, upload(other, "content", "chelsea.png"), [upload(other, "style", "the_scream.jpg")], tiny_params)
    lifecycle.cancel(first)
    create(user, content, [style], tiny_params)


def test_a_job_in_a_batch_belongs_to_the_batch(user, make_user, content, style, tiny_params):
    from webapp.models import Batch

    batch = Batch.objects.create(owner=user, name="three styles")
    job = create(user, content, [style], tiny_params, batch=batch)
    assert list(batch.jobs.all()) == [job]
    with pytest.raises(lifecycle.JobInputError, match="batch"):
        create(user, content, [style], tiny_params, batch=Batch.objects.create(owner=make_user()))


def test_stored_params_are_validated_again_when_read(queued_job):
    StyleJob.objects.filter(pk=queued_job.pk).update(params={**queued_job.params, "size": -1})
    queued_job.refresh_from_db()
    with pytest.raises(stylize.ConfigError, match="size"):
        queued_job.config()
