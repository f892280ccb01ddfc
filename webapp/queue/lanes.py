"""What a job's message is: its queue, its task name, and the Redis priority lane it waits in.

A leaf: it imports nothing, so the Celery app's configuration (webapp/celery.py), the sender
(webapp/jobs/dispatch.py), the broker reader (broker.py) and the task (webapp/worker/tasks.py)
all read the same constants.

Kombu's Redis transport keeps one list per priority lane, 0 … LANES - 1, and serves lane 0
first. A job's priority (higher first, MIN_PRIORITY … MAX_PRIORITY, 0 by default) maps to a
lane with lane(): priority 0 is DEFAULT_LANE, and each step up or down is one lane, so that
raising a job once serves it sooner; past the ends the priorities share lane 0 or the last one.

Fair share: `behind` moves a message that many lanes later. dispatch.py gives each job of a
person who already has QUEUE_SHARE_PER_PERSON jobs queued or running one lane more per
extra job, so a second person's first job waits behind nobody's fifth (Redis serves lane 0
first, and each lane in order of arrival).
"""

QUEUE = "gpu"
# Messages already queued carry this name: it must not change with the module's path.
TASK_NAME = "webapp.run_style_job"
# The nine patches that excite a unit (webapp/worker/patches.py): a second of work, asked for by
# a person looking at a page, so on a queue of its own: it never waits behind the backlog of
# style jobs (a worker that consumes both takes from each in turn), it stays out of the jobs'
# queue depth and the reconciler, and a machine without a GPU can serve it alone.
PATCHES_QUEUE = "patches"
PATCHES_TASK_NAME = "webapp.render_unit_patches"
WORKER_QUEUES = (QUEUE, PATCHES_QUEUE)  # what every worker consumes by default
LANES = 10
DEFAULT_LANE = 4
MIN_PRIORITY, MAX_PRIORITY = -9, 9


def lane(priority: int, behind: int = 0) -> int:
    """The Redis lane of a job's priority, `behind` lanes later (its owner's other jobs, see above)."""
    return max(0, min(LANES - 1, DEFAULT_LANE - priority + max(0, behind)))

