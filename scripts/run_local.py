#!/usr/bin/env python
"""`make run`: the whole service on this machine, for trying it out and for development.

It migrates the database, collects the static files, makes a first admin account, picks a
broker, starts one Celery worker, the job reconciler (`manage.py reconcile_jobs`) and the web
tier production runs (nginx routing to two groups of gunicorn's uvicorn workers,
scripts/router.py and docker/gunicorn.conf.py; ServeStatic for the static files), prints the
URL, and stops everything it started on Ctrl-C or SIGTERM (a second Ctrl-C kills at once).

`run_local.py manage ARGS…` (`make manage ARGS="…"`) runs `manage.py ARGS…` with the same
settings and data, e.g. `api_token admin` or `changepassword admin`.

The broker is the first of:
  1. CELERY_BROKER_URL or REDIS_URL from the environment;
  2. a private redis-server on a free port, its data in VAR_DIR/redis (if one is on PATH);
  3. Celery's filesystem transport in VAR_DIR/broker: no server at all, one machine only.

Environment (besides everything webapp/settings.py reads): PORT (8000; another free one
if that is taken), HOST (127.0.0.1; an IPv4 address, 0.0.0.0 for all), VAR_DIR (var/: database, uploads, broker, Redis),
ADMIN_PASSWORD (the first admin's password; else a random one, printed once), DEBUG (1: a
throwaway SECRET_KEY, localhost only, plain-HTTP cookies), WEB_CONCURRENCY (2 web processes
for pages), LIVE_CONCURRENCY (1 for event streams and state polls).

The children's output comes to this terminal, each line prefixed with its name. Every
child runs in a process group of its own, so stopping one stops the processes it
started too (the worker's pool), and the terminal's Ctrl-C reaches only this launcher,
which stops them in order: web and worker first, then Redis.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `scripts/` is this file's folder; the project's packages are one up

from scripts import processes, router  # noqa: E402
PYTHON = sys.executable
STOP_GRACE_SECONDS = 10  # a worker in the middle of a job gets this long before it is killed
READY_TIMEOUT_SECONDS = 180  # the worker imports torch; a cold first start on a small machine is slow
ADMIN_MARKER = "run_local admin:"  # how the `prepare` step reports the admin account to its parent

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_print_lock = threading.RLock()  # re-entrant: a signal handler may print while the main thread is printing


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


class Stop(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM, SIGHUP)."""


class _Starting:
    """While a child is being started, a stop is held back until it is on the list of children:
    one raised in between would leave it running with nobody to stop it. (Blocking the signals
    instead would not do: a child inherits the blocked mask.)"""

    active = False
    held: Stop | None = None


class Child:
    """A process in a process group of its own, its output copied to ours with a prefix."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], children: list[Child],
                 ready_text: str | None = None):
        self.name = name
        self.ready = threading.Event()
        self._ready_text = ready_text
        _Starting.active = True
        try:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            children.append(self)
        finally:
            _Starting.active = False
        self._pump = threading.Thread(target=self._copy_output, name=f"{name}-output", daemon=True)
        self._pump.start()
        if _Starting.held:
            raise _Starting.held

    def _copy_output(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if self._ready_text and self._ready_text in line:
                self.ready.set()
            say(f"[{self.name}] {line}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the process group, the leader included."""
        processes.kill_group(self.process, wait=0)


def stop_all(children: list[Child]) -> None:
    """Web and worker first (they use the broker), then the broker; SIGKILL whatever outlives the grace."""
    names = {child.process.pid: child.name for child in children}
    processes.stop_groups(
        [[c.process for c in children if c.name != "redis"], [c.process for c in children if c.name == "redis"]],
        STOP_GRACE_SECONDS,
        late=lambda p: say(f"[run] {names[p.pid]} did not stop within {STOP_GRACE_SECONDS} s; killing it"))
    for child in children:
        child.process.wait()
        child._pump.join(timeout=2)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str) -> int:
    wanted = int(os.environ.get("PORT") or 8000)
    if port_is_free(host, wanted):
        return wanted
    port = processes.free_port(host)
    say(f"[run] port {wanted} is taken; using {port}")
    return port


def start_broker(env: dict[str, str], var_dir: Path, children: list[Child]) -> str:
    """Puts the broker's URL in `env` (REDIS_URL or CELERY_BROKER_URL) unless the environment names one;
    returns a line that describes the broker."""
    if env.get("CELERY_BROKER_URL"):
        if env["CELERY_BROKER_URL"].startswith("memory://"):
            raise SystemExit("CELERY_BROKER_URL=memory:// works within one process only; unset it for make run")
        return f"{env['CELERY_BROKER_URL']} (CELERY_BROKER_URL)"
    if env.get("REDIS_URL"):
        return f"{env['REDIS_URL']} (REDIS_URL)"
    binary = shutil.which("redis-server", path=env.get("PATH"))
    if binary is None:
        env["CELERY_BROKER_URL"] = "filesystem://"
        return (f"Celery's filesystem transport in {var_dir / 'broker'} (no redis-server on PATH; "
                f"set REDIS_URL or install redis-server for acknowledgements and priorities)")
    data = var_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    # AOF: queued jobs survive a restart of `make run`, as their rows in the database do.
    redis_server = Child("redis", processes.redis_command(port, data, appendonly=True, binary=binary), env, children)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        processes.wait_for_redis(url, redis_server.alive)
    except processes.ProcessError as error:
        raise SystemExit(f"{error} (its output is above); set REDIS_URL to use another")
    env["REDIS_URL"] = url
    return f"{url} (a private redis-server, data in {data})"


def prepare(env: dict[str, str]) -> str:
    """Migrate and make sure an admin exists, in a child Python (Django imports torch through the
    models; this launcher stays small). Returns the line that describes the admin login."""
    admin_password = env.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    report = ""
    with subprocess.Popen([PYTHON, __file__, "prepare"], cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env={**env, "ADMIN_PASSWORD": admin_password}) as process:
        try:
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line.startswith(ADMIN_MARKER):
                    report = line[len(ADMIN_MARKER):].strip()
                else:
                    say(f"[setup] {line}")
        except BaseException:  # a stop: this child has none of its own, so killing it is enough
            process.kill()
            raise
    if process.returncode != 0:
        raise SystemExit(f"setting up the database failed (exit code {process.returncode}; output above)")
    if report == "created":
        where = "from ADMIN_PASSWORD" if env.get("ADMIN_PASSWORD") else "new; shown only this once"
        return f"username admin, password {admin_password} ({where})"
    names = report.removeprefix("existing ")
    return (f"username {names} (made by an earlier run; `make manage ARGS=\"changepassword "
            f"{names.split(',')[0]}\"` sets a new password)")


def prepare_database() -> None:
    """`run_local.py prepare`: runs in the child that prepare() starts."""
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
    call_command("collectstatic", interactive=False, verbosity=0)  # into VAR_DIR/static, for ServeStatic
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    existing = list(users.filter(is_superuser=True).order_by("pk").values_list("username", flat=True)[:3])
    if existing:
        print(f"{ADMIN_MARKER} existing {','.join(existing)}")
    else:
        users.create_superuser("admin", email="", password=os.environ["ADMIN_PASSWORD"])
        print(f"{ADMIN_MARKER} created")


def start_web(env: dict[str, str], host: str, port: int, var_dir: Path, children: list[Child]) -> None:
    """The web tier production runs (scripts/router.py): nginx on host:port in front of a group of
    WEB_CONCURRENCY (2) processes for pages and one of LIVE_CONCURRENCY (1) for the event
    streams and state polls, both on loopback; fewer processes than production (each imports
    torch). Without nginx on this machine, one group serves everything and the launcher says so."""
    pages_workers = env.get("WEB_CONCURRENCY") or "2"
    nginx = router.nginx_binary()
    if nginx is None:
        say("[run] nginx is not installed (`make run` installs it): one group of web processes serves "
            "pages and live progress alike")
        Child("web", router.gunicorn_command(PYTHON, f"{host}:{port}", pages_workers), env, children)
        return
    tier = router.WebTier(listen=f"{host}:{port}", pages=f"127.0.0.1:{processes.free_port()}",
                          live=f"127.0.0.1:{processes.free_port()}")
    Child("web", router.gunicorn_command(PYTHON, tier.pages, pages_workers), router.group_env(env, "pages"), children)
    Child("live", router.gunicorn_command(PYTHON, tier.live, env.get("LIVE_CONCURRENCY") or "1"),
          router.group_env(env, "live"), children)
    # The router once both groups answer: before, each of its answers would be a 502 and a log line.
    wait_until_ready([f"http://{tier.pages}/health/", f"http://{tier.live}/health/"], children, worker=False)
    Child("router", tier.router_command(var_dir / "router", nginx), env, children)


def wait_until_ready(urls: list[str], children: list[Child], worker: bool = True) -> None:
    """Until every URL answers 200 (and, with `worker`, the worker says it is ready)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    up: set[str] = set()
    while not (len(up) == len(urls) and (not worker or all(c.ready.is_set() for c in children if c.name == "worker"))):
        for child in children:
            if not child.alive():
                raise SystemExit(f"{child.name} exited with code {child.process.returncode} while starting "
                                 f"(its output is above)")
        if time.monotonic() > deadline:
            raise SystemExit(f"the service was not ready after {READY_TIMEOUT_SECONDS} s (output above)")
        for url in set(urls) - up:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        up.add(url)
            except OSError:
                pass
        time.sleep(0.2)


def local_env() -> dict[str, str]:
    """The environment of every process of the local run, and of `manage`: its data under VAR_DIR
    (var/ by default), and development settings unless the environment says otherwise."""
    var_dir = Path(os.environ.get("VAR_DIR") or REPO / "var").expanduser().resolve()
    env = {**os.environ, "VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"}
    env.setdefault("DEBUG", "1")
    env.setdefault("MEDIA_SHARED", "1")  # one machine: the worker's files are the web's own folder
    env.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    return env


def manage(args: list[str]) -> int:
    """`run_local.py manage ARGS…`: manage.py with the local run's settings and data."""
    return subprocess.call([PYTHON, "manage.py", *args], cwd=REPO, env=local_env())


def run(children: list[Child]) -> int:
    env = local_env()
    var_dir = Path(env["VAR_DIR"])
    host = env.get("HOST") or "127.0.0.1"
    port = choose_port(host)
    url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/"

    broker = start_broker(env, var_dir, children)
    admin = prepare(env)
    # One worker process on the jobs' queue, as in production (one per GPU).
    Child("worker", processes.worker_command(f"local-{port}@%h", PYTHON), env, children, ready_text=" ready.")
    # Sends again any queued job whose message the broker lost (say, a send while Redis was
    # restarting) and requeues running jobs whose worker went silent: a pass every 15 s.
    Child("reconciler", [PYTHON, "manage.py", "reconcile_jobs", "--every", "15"], env, children)
    start_web(env, host, port, var_dir, children)
    wait_until_ready([url + "health/"], children)

    say("\n".join([
        "",
        f"==> The style transfer service is running at {url}",
        f"    admin:  {url}admin/  {admin}",
        f"    API:    {url}api/v1/ (docs: {url}api/docs/); a person's token: make -s token NAME=admin",
        f"    broker: {broker}",
        f"    data:   {var_dir} (database, uploads, results)",
        "    Ctrl-C stops everything.",
        "",
    ]))
    while True:
        for child in children:
            if not child.alive():
                say(f"[run] {child.name} exited with code {child.process.returncode}; stopping everything")
                return 1
        time.sleep(0.3)


def main() -> int:
    children: list[Child] = []

    def on_signal(handler) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, handler)

    def ask_to_stop(signum, _frame):
        on_signal(kill_now)  # from here on, a second signal kills
        stop = Stop(signal.Signals(signum).name)
        if _Starting.active:
            _Starting.held = stop
        else:
            raise stop

    def kill_now(_signum, _frame):
        say("[run] killing everything now")
        for child in children:
            child.kill_group()
        os._exit(130)

    on_signal(ask_to_stop)
    code = 0
    try:
        code = run(children)
    except Stop as stop:
        say(f"[run] {stop} received; stopping (Ctrl-C again kills at once)")
    except SystemExit as error:
        if not isinstance(error.code, int):
            say(f"[run] {error.code}")
        code = 1 if error.code else 0
    finally:
        on_signal(kill_now)
        stop_all(children)
    say("[run] stopped")
    return code


if __name__ == "__main__":
    if sys.argv[1:] == ["prepare"]:
        prepare_database()
    elif sys.argv[1:2] == ["manage"]:
        sys.exit(manage(sys.argv[2:]))
    else:
        sys.exit(main())
