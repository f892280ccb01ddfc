"""scripts/run_local.py (`make run`) as the deployment tests start it: in a session of its own, on a
free port and a VAR_DIR of the test's, its output collected; and the processes it leaves, read
from /proc, so a test can prove that none outlives it."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from deploy_files import REPO
from scripts.processes import free_port

READY_TIMEOUT = 240  # s; migrations, then a worker that imports torch, on 2 busy cores
BANNER = re.compile(r"running at (http://127\.0\.0\.1:(\d+)/)")
# The test process's own settings (pytest.ini) must not leak into the launcher's.
NOT_INHERITED = ("CELERY_BROKER_URL", "REDIS_URL", "DATABASE_URL", "SECRET_KEY", "DEBUG", "MEDIA_ROOT",
                 "STATIC_ROOT", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE", "ADMIN_PASSWORD",
                 "PORT", "HOST", "VAR_DIR")

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
