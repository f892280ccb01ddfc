"""gunicorn's settings for the `web` service of docker-compose.yml (the image's default command), and
for `make run` and the load bench, which override the address and the number of processes.

gunicorn manages the processes; each runs uvicorn's event loop with the ASGI application
(webapp/asgi.py). A connection that waits (an event stream, a long poll, a slow reader of a
download, an idle client) holds a socket in that loop, not a process: twenty idle connections
cannot block the site as they blocked three sync workers. Django's synchronous views run in a
thread per request beside the loop.
"""

import os
import sys

wsgi_app = "webapp.asgi:application"  # the name is gunicorn's; the application is ASGI
worker_class = "uvicorn_worker.UvicornWorker"
bind = "0.0.0.0:8000"
# Each worker process imports torch (the models reach the engine's config): a few hundred MB each.
workers = int(os.environ.get("WEB_CONCURRENCY") or 3)
# A worker that does not report to the arbiter for this long is restarted (a stuck event loop).
timeout = 120
keepalive = 5  # s an idle keep-alive connection is kept open
graceful_timeout = 20  # s for open streams and downloads to end on a restart
# Heartbeat files off the container's overlay filesystem (not every machine has /dev/shm).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
# gunicorn 27+ opens a runtime control socket in $XDG_RUNTIME_DIR or ~/.gunicorn by default;
# nothing here uses it (older versions ignore the name).
control_socket_disable = True
# PostgreSQL connections per web process (webapp/settings.py: DB_POOL_SIZE): 3 processes x 10
# stay well under PostgreSQL's default of 100 with the workers beside them.
if not os.environ.get("DB_POOL_SIZE"):  # unset, or left empty in .env
    os.environ["DB_POOL_SIZE"] = "10"


def post_worker_init(worker):
    # The event loop shares the GIL with the threads of synchronous views: by default a thread may
    # keep it for 5 ms before the loop gets a turn, and a burst of page loads then holds up every
    # event and poll the process is passing on. 1 ms gives the loop its turn five times sooner.
    sys.setswitchinterval(0.001)
    # WEB_NICE (0): the router's pages group runs below the live group (scripts/router.py gives it
    # 10), so that when the cores are busy, a burst of page loads waits rather than the events and
    # polls, which take a fraction of a ms each.
    niceness = int(os.environ.get("WEB_NICE") or 0)
    if niceness:
        os.nice(niceness)
