"""gunicorn's settings for the `web` service of docker-compose.yml (the image's default command), and
for `make run` and the load bench, which override the address and the number of processes."""

import os

wsgi_app = "wsgi:application"  # docker/wsgi.py: Django plus WhiteNoise for the static files
pythonpath = os.path.dirname(os.path.abspath(__file__))  # where wsgi.py is; /app (the project) is the cwd
bind = "0.0.0.0:8000"
# Each worker process imports torch (the models reach the engine's config): a few hundred MB each.
workers = int(os.environ.get("WEB_CONCURRENCY") or 3)
timeout = 120  # s; an upload of UPLOAD_MAX_BYTES over a slow link
# Heartbeat files off the container's overlay filesystem (`make run` uses the same file; not
# every machine has /dev/shm).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
# gunicorn 27+ opens a runtime control socket in $XDG_RUNTIME_DIR or ~/.gunicorn by default;
# nothing here uses it (older versions ignore the name).
control_socket_disable = True
