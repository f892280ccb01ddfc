"""Local child processes, as `make run` (scripts/run_local.py), the load bench (bench/load_test.py)
and the tests (tests/processes.py) all start them: a free port, a private redis-server, and
stopping a child together with everything it started.

Every child is started with start_new_session=True, so it leads a process group of its own:
stopping the group stops the processes it forked too (Celery's and gunicorn's workers), and a
terminal's Ctrl-C reaches only the program that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from webapp.queue.lanes import WORKER_QUEUES

REDIS_START_TIMEOUT = 20  # s


class ProcessError(RuntimeError):
    """A child did not start (it exited, or did not answer in time); the message says which."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ProcessError("redis-server is not on PATH (apt-get install redis-server)")
    return binary


def redis_command(port: int, folder: Path, *, appendonly: bool = False, fsync: str = "everysec",
                  binary: str | None = None) -> list[str]:
    """A private redis-server in the foreground on 127.0.0.1:`port`, its files in `folder`: no
    snapshots, the append-only file when asked (`fsync` "always": every acknowledged write is on
    disk before the reply), and no eviction (a queue must never lose a message to free memory)."""
    persistence = ["--appendonly", "yes", "--appendfsync", fsync] if appendonly else ["--appendonly", "no"]
    return [binary or redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--save", "", *persistence, "--maxmemory-policy", "noeviction", "--daemonize", "no"]


def wait_for_redis(url: str, running: Callable[[], bool], timeout: float = REDIS_START_TIMEOUT) -> None:
    """Return once the redis-server at `url` answers PING; ProcessError if `running()` says it
    exited, or after `timeout` seconds. (It may still be loading its append-only file.)"""
    import redis  # in requirements.txt (celery[redis])

    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5) as client:
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                if not running():
                    raise ProcessError("redis-server exited while starting") from None
                if time.monotonic() > deadline:
                    raise ProcessError(f"redis-server did not answer within {timeout:g} s") from None
                time.sleep(0.05)


def s3_server_command(port: int, python: str = sys.executable) -> list[str]:
    """A real S3 HTTP server on 127.0.0.1:`port`, in memory (moto's standalone server, from
    requirements-dev.txt): the bucket of tests/multimachine and of the benches that want one."""
    return [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def worker_command(node: str, python: str = sys.executable) -> list[str]:
    """One Celery worker process on the jobs' queue and the patches' one, as production runs one
    per GPU, named `node` (`%h` is the host name), without the cluster chatter (gossip, mingle,
    heartbeats) that a local worker has no use for."""
    return [python, "-m", "celery", "-A", "webapp", "worker", "-Q", ",".join(WORKER_QUEUES), "-c", "1",
            "--pool", "prefork", "-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat"]


def kill_group(process: subprocess.Popen, wait: float = 10) -> None:
    """SIGKILL the process group `process` leads (the leader and whatever it left behind)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left in it
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        pass


def stop_groups(groups: Iterable[Sequence[subprocess.Popen]], grace: float,
                late: Callable[[subprocess.Popen], None] | None = None) -> None:
    """Stop the children group by group (say web and workers first, then the broker they use):
    SIGTERM to each leader, which stops its own children (a warm shutdown for Celery); after
    `grace` seconds `late(process)` is told of any still running, and every process group is
    SIGKILLed, whatever is left in it."""
    for group in groups:
        for process in group:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in group:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if late is not None:
                    late(process)
            kill_group(process)


def child_pids(pid: int) -> list[int]:
    """The live children of `pid` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses, so split after the last ")"
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found
