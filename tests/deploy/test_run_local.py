"""`make run` end to end: scripts/run_local.py starts the service with a private redis-server, or with
no server at all (the filesystem transport), a real job goes through it, and a signal stops every
process it started."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error

import pytest

from deploy_files import REPO
from launcher import (BANNER, READY_TIMEOUT, Launcher, assert_nothing_left, descendants, get, launcher_env,
                      log_in)

# Runs in a subprocess beside the launched service: makes a person, two tiny images and a job, and
# waits for the worker to finish it.
JOB_SCRIPT = """
import io, json, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from webapp.jobs import lifecycle, storage

def png(red, blue):
    image = Image.new("RGB", (40, 32))
    image.putdata([(red, (x * 7) % 256, blue if (x // 4 + y // 4) % 2 else 255 - blue)
                   for y in range(32) for x in range(40)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return SimpleUploadedFile("tiny.png", out.getvalue())

person, _ = get_user_model().objects.get_or_create(username="deploy-test")
content = storage.store_upload(person, png(200, 40))
style = storage.store_upload(person, png(20, 220))
job = lifecycle.create_job(person, content, [style], {"size": 32, "scales": 1, "iterations": 2, "seed": 1})
deadline = time.monotonic() + float(sys.argv[1])
while not job.is_finished and time.monotonic() < deadline:
    time.sleep(0.2)
    job.refresh_from_db()
print(json.dumps({"status": job.status, "error": job.error, "result": job.result.name if job.result else ""}))
"""


def run_a_job(launcher: Launcher, broker_env: dict[str, str], timeout: float = 120) -> dict:
    env = {**launcher.env, **broker_env, "DEBUG": "1", "PYTHONPATH": str(REPO),
           "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    run = subprocess.run([sys.executable, "-c", JOB_SCRIPT, str(timeout)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout + 60)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nlauncher:\n{launcher.output()[-4000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def started(request):
    """Kills what a failed test left running."""
    launchers: list[Launcher] = []
    yield launchers
    for launcher in launchers:
        if launcher.process.poll() is None:
            launcher.kill()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_it_runs_the_service_on_a_private_redis_and_ctrl_c_stops_everything(tmp_path, started):
    launcher = Launcher(launcher_env(tmp_path))
    started.append(launcher)
    url = launcher.wait_for(BANNER, READY_TIMEOUT).group(1)

    assert get(url + "health/") == (200, '{"status": "ok", "database": "ok"}')
    # The first admin's login is printed once, and it works.
    password = re.search(r"username admin, password (\S+) \(new; shown only this once\)",
                         launcher.line_after("admin:")).group(1)
    assert log_in(url, "admin", password).endswith("/admin/")
    broker = launcher.line_after("broker:")
    redis_url = re.match(r"(redis://127\.0\.0\.1:\d+/0) \(a private redis-server", broker).group(1)

    job = run_a_job(launcher, {"REDIS_URL": redis_url})
    assert job["status"] == "succeeded", f"{job}\n{launcher.output()[-4000:]}"
    assert (tmp_path / "var" / "media" / job["result"]).is_file()
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()  # queued jobs survive a restart

    children = descendants(launcher.process.pid)
    commands = " ".join(command for _, _, command in children.values())
    assert "redis-server" in commands and "celery -A webapp worker -Q gpu,patches -c 1 --pool prefork" in commands
    # The web tier production runs: nginx in front of two groups of web processes on loopback.
    assert re.search(r"nginx -p \S+ -c \S+nginx\.conf", commands)
    groups = set(re.findall(r"gunicorn -c docker/gunicorn\.conf\.py --bind (\S+)", commands))
    assert len(groups) == 2 and all(g.startswith("127.0.0.1:") and g != url.split("/")[2] for g in groups)
    # A state poll goes to the live group, a page to the other (each logs the requests it served).
    job_path = "/api/v1/jobs/0b5e5c1e-3f43-4a57-9d0e-5c1f2a9e7b10/state"
    with pytest.raises(urllib.error.HTTPError, match="401"):
        get(url + job_path.lstrip("/"))
    launcher.wait_for(re.compile(r"^\[live\] .*GET " + re.escape(job_path)), 10)
    assert not re.search(r"^\[web\] .*GET " + re.escape(job_path), launcher.output(), re.M)
    assert launcher.stop(signal.SIGINT) == 0
    assert_nothing_left(children, tmp_path / "var")
    assert "[run] stopped" in launcher.output()


def test_with_no_redis_server_it_falls_back_to_the_filesystem_broker_and_sigterm_stops_everything(
        tmp_path, started):
    # An earlier start made the admin, with the password from ADMIN_PASSWORD; this one keeps it.
    env = launcher_env(tmp_path, DEBUG="1", ADMIN_PASSWORD="a-password-from-the-environment")
    first = subprocess.run([sys.executable, "scripts/run_local.py", "prepare"], cwd=REPO, env=env, timeout=180,
                           capture_output=True, text=True)
    assert first.returncode == 0 and "run_local admin: created" in first.stdout, first.stdout + first.stderr

    empty_bin = tmp_path / "bin"  # a PATH with no redis-server on it
    empty_bin.mkdir()
    with socket.socket() as taken:  # the port asked for is in use: it takes another
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        launcher = Launcher(launcher_env(tmp_path, PATH=str(empty_bin), PORT=str(busy)))
        started.append(launcher)
        match = launcher.wait_for(BANNER, READY_TIMEOUT)
    url, port = match.group(1), int(match.group(2))
    assert port != busy and f"port {busy} is taken; using {port}" in launcher.output()
    assert launcher.line_after("broker:").startswith("Celery's filesystem transport in")
    assert launcher.line_after("admin:").endswith('username admin (made by an earlier run; `make manage '
                                                  'ARGS="changepassword admin"` sets a new password)')
    assert log_in(url, "admin", "a-password-from-the-environment").endswith("/admin/")

    job = run_a_job(launcher, {"CELERY_BROKER_URL": "filesystem://"})
    assert job["status"] == "succeeded", f"{job}\n{launcher.output()[-4000:]}"

    children = descendants(launcher.process.pid)
    assert "redis-server" not in " ".join(command for _, _, command in children.values())
    assert len(children) >= 3  # web, the worker and its pool process
    assert launcher.stop(signal.SIGTERM) == 0
    assert_nothing_left(children, tmp_path / "var")


def test_ctrl_c_while_it_starts_stops_what_it_had_started(tmp_path, started):
    launcher = Launcher(launcher_env(tmp_path))
    started.append(launcher)
    launcher.wait_for(re.compile(r"^\[setup\] |^\[run\] port"), READY_TIMEOUT)  # migrating
    children = descendants(launcher.process.pid)
    assert launcher.stop(signal.SIGINT) == 0
    assert "SIGINT received; stopping" in launcher.output()
    assert "running at" not in launcher.output()
    assert_nothing_left(children, tmp_path / "var")
