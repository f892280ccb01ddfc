"""`make run` end to end: scripts/run_local.py starts the service with a private redis-server, or with
no server at all (the filesystem transport), a real job goes through it, and a signal stops every
process it started."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from deploy_files import REPO

READY_TIMEOUT = 240  # s; migrations, then a worker that imports torch, on 2 busy cores
BANNER = re.compile(r"running at (http://127\.0\.0\.1:(\d+)/)")
# The test process's own settings (pytest.ini) must not leak into the launcher's.
NOT_INHERITED = ("CELERY_BROKER_URL", "REDIS_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "MEDIA_ROOT",
                 "STATIC_ROOT", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE", "ADMIN_PASSWORD",
                 "PORT", "HOST", "VAR_DIR")

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


class Launcher:
    """scripts/run_local.py in a session of its own, its output collected line by line."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.lines: list[str] = []
        self.process = subprocess.Popen([sys.executable, "scripts/run_local.py"], cwd=REPO, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: re.Pattern, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if match := pattern.search(line):
                    return match
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no line matching {pattern.pattern!r}; the launcher's output:\n{self.output()[-6000:]}")
            time.sleep(0.1)

    def line_after(self, label: str) -> str:
        return next(line.split(label, 1)[1].strip() for line in self.lines if line.strip().startswith(label))

    def stop(self, signum: int, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the launcher did not stop within {timeout} s:\n{self.output()[-4000:]}")
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """Last resort, so that a failing test leaves nothing behind: the launcher and its children's groups."""
        groups = {info[1] for info in descendants(self.process.pid).values()} | {self.process.pid}
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.process.wait(10)


def processes() -> dict[int, tuple[int, int, str, str]]:
    """{pid: (parent pid, process group, start time, state)} of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (command name)"
        table[int(entry)] = (int(fields[1]), int(fields[2]), fields[19], fields[0])
    return table


def descendants(root: int) -> dict[int, tuple[int, str, str]]:
    """{pid: (process group, start time, command line)} of every process below `root`."""
    table = processes()
    found: dict[int, tuple[int, str, str]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, pgid, started, _state) in table.items():
            if ppid == parent and pid not in found:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    command = "?"
                found[pid] = (pgid, started, command)
                frontier.append(pid)
    return found


def with_var_dir(var_dir: Path) -> list[int]:
    """Processes whose environment names `var_dir`: whatever the launcher started, at any time."""
    marker = f"VAR_DIR={var_dir}".encode()
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
        except OSError:
            pass
    return found


def assert_nothing_left(started: dict[int, tuple[int, str, str]], var_dir: Path) -> None:
    """Neither the processes seen below the launcher, nor anything in their process groups, nor
    anything else started with its VAR_DIR is still running (zombies aside)."""
    deadline = time.monotonic() + 5  # init reaps what was reparented to it
    while True:
        table = processes()
        live = {pid for pid, info in table.items() if info[3] != "Z"}
        left = [command for pid, (_, started_at, command) in started.items() if pid in live
                and table[pid][2] == started_at]
        groups = {pgid for pgid, _, _ in started.values()}
        left += [f"pid {pid} in group {table[pid][1]}" for pid in live if table[pid][1] in groups]
        left += [f"pid {pid} with our VAR_DIR" for pid in with_var_dir(var_dir) if pid in live]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"still running after the launcher stopped: {left}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    return {**env, "VAR_DIR": str(tmp_path / "var"), "PORT": str(free_port()), **extra}


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def log_in(url: str, username: str, password: str) -> str:
    """Logs in through the admin's login form; returns the page it lands on."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(url + "admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password,
                                   "next": "/admin/"}).encode()
    with opener.open(urllib.request.Request(url + "admin/login/", data=form), timeout=10) as response:
        return response.url


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
    assert "redis-server" in commands and "celery -A webapp worker -Q gpu -c 1 --pool prefork" in commands
    assert "runserver" in commands
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
    assert launcher.line_after("admin:").endswith("username admin (made by an earlier run; `.venv/bin/python "
                                                  "manage.py changepassword admin` sets a new password)")
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
