"""Load test: the web service under a thousand people watching their jobs live and a few hundred
API clients polling, loopback only.

    .venv/bin/python bench/load_test.py           # 1000 watchers + 200 pollers + 20 submitters, 60 s
    .venv/bin/python bench/load_test.py --smoke   # 50 + 20 + 2 for 10 s (CI)
    .venv/bin/python bench/load_test.py --database-url postgres://postgres@127.0.0.1:5432/test --json out.json

Everything it needs is set up in a temporary folder and stopped again at the end (also on
Ctrl-C or an error): a private redis-server on a free port (the broker and the live updates), a
database (a SQLite file there, or with --database-url a database of its own on that PostgreSQL
server, dropped at the end), people with API tokens and logged-in sessions, the web tier as
production runs it (scripts/router.py: nginx on a free loopback port routing the event streams and
state polls to a group of web processes of their own and everything else to another, each group
gunicorn with uvicorn workers, docker/gunicorn.conf.py) and real Celery workers on the `gpu`
queue. The clients (bench/load_clients.py) run in this process, apart from the servers.

First, with no worker running (so no job changes), --cost-clients clients poll unchanged jobs
with their ETag for --cost-seconds: the web's CPU per unchanged poll (target <= 2 ms). Then the
workers start (pinned to the last core with taskset, in the idle scheduling class with chrt: on
this shared machine a CPU-bound worker would otherwise starve the web tier it is measured against;
in production the workers run on GPU machines) and for --duration seconds: watchers follow their person's newest
job through its event stream (/jobs/<id>/events) as the job page does; pollers ask the API's
cheap poll (/api/v1/jobs/<id>/state) about once a second, a share of them with the ETag they
have; submitters POST tiny jobs. Then it waits (at most --drain-timeout) until every accepted job
has finished, the watchers staying for their jobs' end. Prints the event delay (the worker's
publish to the watcher's receipt), poll latency percentiles, CPU per request, open streams,
errors, lost final events and the jobs' outcome, and writes them as JSON with --json.

Exit code 0 when no request failed, no final event was lost and every accepted job succeeded;
1 otherwise; 2 when the set-up failed or a server died; 130 when interrupted. The latency
targets (event delay p95 <= 250 ms, poll p95 <= 100 ms, <= 2 ms of web CPU per unchanged poll)
are reported, not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.processes import (ProcessError, free_port, redis_command, stop_groups, wait_for_redis,  # noqa: E402
                               worker_command)
from scripts.router import WebTier, group_env, gunicorn_command, nginx_binary  # noqa: E402
PYTHON = sys.executable
WEB_TIER = ("nginx", "gunicorn", "gunicorn-live")  # the names start_web() gives its processes
READY_TIMEOUT_S = 180  # gunicorn's and Celery's processes import torch; a cold start on 2 busy cores is slow
POLL_TARGET_P95_MS = 100
EVENT_TARGET_P95_MS = 250
UNCHANGED_POLL_TARGET_CPU_MS = 2.0
# The smallest job the engine takes: 32 px, one scale, two L-BFGS iterations. It still runs the
# whole path (claim, progress, result, visualisations, finish): 2-5 s on a busy 2-core CPU, most
# of it the visualisations.
JOB_PARAMS = {"size": 32, "scales": 1, "iterations": 2, "coarse_iterations": 0}


def say(text: str) -> None:
    print(f"[load] {text}", flush=True)


class Services:
    """The processes this run started, each in a process group of its own, so that stopping one
    stops its children too (gunicorn's and Celery's worker processes)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "w") as log:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((name, process))
        return process

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                tail = "\n".join(self.log(name).splitlines()[-30:])
                raise SetupError(f"{name} exited with code {process.returncode}:\n{tail}")

    def stop_all(self, grace: float = 10.0) -> None:
        """Web and workers first (they use Redis), then Redis; SIGKILL to whatever outlives the grace
        (a Celery worker finishes its current job first: a tiny one)."""
        stop_groups([[p for name, p in self.processes if name != "redis"],
                     [p for name, p in self.processes if name == "redis"]], grace)


class SetupError(Exception):
    pass


# -- set-up ------------------------------------------------------------------------------------

def start_redis(services: Services) -> str:
    port = free_port()
    data = services.folder / "redis"
    data.mkdir()
    try:
        process = services.start("redis", redis_command(port, data), dict(os.environ))
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(url, lambda: process.poll() is None)
    except ProcessError as error:
        raise SetupError(f"{error}\n{services.log('redis')[-2000:]}") from error
    return url


class PostgresDatabase:
    """A database of this run's own on the server that `admin_url` names; dropped in drop()."""

    def __init__(self, admin_url: str):
        import psycopg  # in requirements.txt

        self.admin_url = admin_url
        self.name = f"load_test_{secrets.token_hex(4)}"
        try:
            with psycopg.connect(admin_url, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{self.name}"')
        except psycopg.Error as error:
            raise SetupError(f"could not create a database on {admin_url}: {error}") from error
        self.url = urllib.parse.urlsplit(admin_url)._replace(path=f"/{self.name}").geturl()

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            # FORCE: a connection the stopped servers left open must not keep it alive.
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def service_env(folder: Path, database_url: str, redis_url: str) -> dict:
    """The production settings (DEBUG off) over plain HTTP on loopback, and limits that keep the
    service's own refusals (429 for the per-person job cap and the request rate) out of the figures."""
    var = folder / "var"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var), "MEDIA_ROOT": str(var / "media"), "STATIC_ROOT": str(var / "static"),
        "MEDIA_SHARED": "1",  # one machine: web and worker share the folder
        "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url,
        "JOBS_PER_USER": "100000",
        "API_THROTTLE_RATE": "1000000/minute",
        "LOG_LEVEL": "INFO",
        # One compute thread per Celery worker: OpenMP threads spinning on 2 cores would slow
        # the web server far more than they speed up a 32 px job.
        "OMP_NUM_THREADS": "1",
    }


def prepare(env: dict, people: int) -> list[dict]:
    """Migrate and make the people (in a child: Django stays out of this process)."""
    done = subprocess.run([PYTHON, __file__, "_prepare", str(people)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SetupError(f"preparing the database failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _prepare_in_child(count: int) -> None:
    """`load_test.py _prepare N`: migrate; N people, each with an API token and a logged-in session
    (made as Django's login() makes one: logging in through the form would spend seconds per
    person on password hashing, which is not what this test measures)."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.core.management import call_command
    from webapp.api import tokens

    call_command("migrate", interactive=False, verbosity=0)
    store = import_module(settings.SESSION_ENGINE).SessionStore
    out = []
    for i in range(count):
        user = get_user_model().objects.create_user(f"load{i}", password=None)
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        out.append({"username": user.username, "token": tokens.issue(user),
                    "session_cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}"})
    print(json.dumps(out))


def start_web(services: Services, env: dict, args) -> str:
    """The web tier as production runs it (scripts/router.py): nginx on a free loopback port in front
    of a pages group of --web-workers processes and a live group of --live-workers; returns the
    router's base URL once it answers /health/."""
    nginx = nginx_binary()
    if nginx is None:
        raise SetupError("nginx is not installed (`make load` installs it: apt-get install nginx)")
    tier = WebTier(listen=f"127.0.0.1:{free_port()}", pages=f"127.0.0.1:{free_port()}",
                   live=f"127.0.0.1:{free_port()}")
    Path(env["STATIC_ROOT"]).mkdir(parents=True, exist_ok=True)  # ServeStatic warns about a missing one
    for name, group, bind, workers in (("gunicorn", "pages", tier.pages, args.web_workers),
                                       ("gunicorn-live", "live", tier.live, args.live_workers)):
        # gunicorn 27 opens a control socket, by default in ~/.gunicorn: keep it in this run's folder.
        control = services.folder / f"{name}.ctl" if _gunicorn_version() >= (27,) else None
        services.start(name, gunicorn_command(PYTHON, bind, workers, control), group_env(env, group))
    # The router once both groups answer: before, each of its answers would be a 502 and a log line.
    wait_until(services, lambda: _answers(f"http://{tier.pages}/health/") and _answers(f"http://{tier.live}/health/"),
               "the web processes")
    services.start("nginx", tier.router_command(services.folder / "router", nginx), env)
    base = f"http://{tier.listen}"
    wait_until(services, lambda: _answers(f"{base}/health/"), "the router")
    return base


def start_workers(services: Services, env: dict, count: int) -> None:
    """Celery workers on the `gpu` queue, as in production (one process each), pinned as
    worker_pinning() says; returns once all are ready."""
    names = [f"celery{i}" for i in range(count)]
    pinned = worker_pinning()
    for name in names:
        services.start(name, pinned + worker_command(f"{name}-{services.folder.name}@%h", PYTHON), env)
    wait_until(services, lambda: all(" ready." in services.log(name) for name in names), "the Celery workers")


def worker_pinning() -> list[str]:
    """The command prefix that keeps the CPU-bound worker off the web tier's back: the last core
    only, and the idle scheduling class (it runs when the web tier leaves the core idle), or
    nice 19 where chrt is missing. Production workers run on GPU machines, not beside the web."""
    prefix = ["chrt", "--idle", "0"] if shutil.which("chrt") else ["nice", "-n", "19"]
    if shutil.which("taskset"):
        prefix += ["taskset", "-c", str((os.cpu_count() or 1) - 1)]
    return prefix


def wait_until(services: Services, ready, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        services.check_alive()
        if time.monotonic() > deadline:
            raise SetupError(f"{what} not ready after {READY_TIMEOUT_S} s (logs in {services.folder})")
        time.sleep(0.3)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _gunicorn_version() -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(int(part) for part in version("gunicorn").split(".")[:2] if part.isdigit())
    except PackageNotFoundError:
        raise SetupError("gunicorn is not installed: .venv/bin/pip install -r requirements-dev.txt")


def cpu_snapshot(services: Services, database: PostgresDatabase | None = None) -> dict[tuple[str, int], float]:
    """CPU seconds used so far, per (what, pid): each process of a service's process group, each
    PostgreSQL backend serving this run's database, this process (the clients, pid 0 here) and the
    whole machine (busy time of all cores from /proc/stat, pid 0). Linux only; {} elsewhere."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:]]
        out = {("machine", 0): (sum(cpu) - cpu[3] - cpu[4]) / tick, ("clients", 0): time.process_time()}
        groups = {process.pid: name for name, process in services.processes}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
                name = groups.get(int(fields[2]))  # process group
                if name is None and database:
                    # A backend's title names its database: "postgres: 15/main: postgres load_test_… ".
                    with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                        name = "postgres" if f" {database.name} ".encode() in f.read() else None
            except OSError:
                continue  # gone meanwhile
            if name:
                out[(name, int(entry.name))] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        return out
    except (OSError, ValueError, AttributeError):
        return {}


# -- report ------------------------------------------------------------------------------------

def server_log_problems(services: Services) -> dict:
    """Lines of the servers' logs that say something went wrong (counted, a few kept)."""
    found = {}
    for name, _ in services.processes:
        lines = [line for line in services.log(name).splitlines()
                 if any(mark in line for mark in (" ERROR ", "[ERROR]", "WORKER TIMEOUT", "Traceback", "CRITICAL"))]
        if lines:
            found[name] = {"count": len(lines), "first": lines[:3]}
    return found


def print_summary(report: dict) -> None:
    a = report["settings"]
    print(f"\n{a['watchers']} watchers, {a['pollers']} pollers (every {a['poll_interval']:g} s, "
          f"{a['etag_share']:.0%} with ETags), {a['submitters']} submitters (every {a['submit_interval']:g} s) for "
          f"{report['seconds']} s; nginx in front of {a['web_workers']} + {a['live_workers']} uvicorn worker(s) "
          f"(pages + live), {a['celery_workers']} Celery worker(s) ({report['worker_pinning']}), {report['database']}")
    print(f"(the watchers' first pages open over the first {report['ramp_seconds']:g} s; the last three columns "
          f"count only the requests sent after that ramp)")
    rows = [("endpoint", "requests", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "bytes",
             "after ramp: p50", "p95", "p99")]
    for name, e in report["endpoints"].items():
        rows.append((name, e["requests"], e["per_second"], e["errors"], e["p50_ms"], e["p95_ms"], e["p99_ms"],
                     e["max_ms"], e["mean_bytes"], e["steady_p50_ms"], e["steady_p95_ms"], e["steady_p99_ms"]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for name, e in report["endpoints"].items():
        for sample in e["error_samples"]:
            print(f"  error ({name}): {sample}")
    st = report["streams"]
    print(f"\nevent streams: {st['events']} events; delay p50/p95/p99/max {st['delay_p50_ms']} / {st['delay_p95_ms']}"
          f" / {st['delay_p99_ms']} / {st['delay_max_ms']} ms; {st['connects']} streams opened ({st['reconnects']} "
          f"reconnections after a drop), open at once "
          f"max {st['open_max']}, mean {st['open_mean']}; {st['finals']} ended with their job's final state, "
          f"{st['lost_finals']} lost; {st['errors']} error(s) {st['error_kinds'] or ''}")
    for sample in st["error_samples"]:
        print(f"  error (streams): {sample}")
    c = report["cost"]
    print(f"unchanged polls: {c['polls']} in {c['seconds']:g} s, web CPU {c['web_cpu_seconds']} s: "
          f"{c['web_cpu_ms_per_poll']} ms per poll")
    j = report["jobs"]
    print(f"\njobs: {j['accepted']} accepted ({j['accepted_before_load']} before the load), {j['succeeded']} "
          f"succeeded, {j['failed']} failed, {j['cancelled']} cancelled, {j['unfinished']} unfinished; "
          f"drain {j['drain_seconds']} s")
    print(f"load average (1, 5, 15 min): {report['load_average_before']} before, "
          f"{report['load_average_end_of_load']} at the end of the load phase")
    cpu = report["cpu_seconds"]
    if cpu:
        web_requests = sum(e["requests"] for e in report["endpoints"].values()) + st["connects"]
        ours = sum(v for k, v in cpu.items() if k != "machine")
        print(f"CPU seconds in the load phase ({report['seconds']} s x {report['cpus']} cores = "
              f"{report['seconds'] * report['cpus']:.0f}): "
              + ", ".join(f"{k} {v}" for k, v in cpu.items() if k != "machine")
              + f", everything else on the machine {max(0.0, cpu['machine'] - ours):.1f}"
              + (f"; the web tier (nginx and both groups) per request or stream "
                 f"{1000 * web_tier_cpu(cpu) / web_requests:.1f} ms"
                 if web_requests else ""))
    for line in report["targets"]:
        print(line)
    for name, problem in report["server_log_problems"].items():
        print(f"{name} log: {problem['count']} error line(s), e.g. {problem['first'][0][:200]}")
    print(f"\n{'PASS' if report['passed'] else 'FAIL'}: {report['verdict']}")


def web_tier_cpu(cpu_seconds: dict[str, float]) -> float:
    """CPU seconds of everything that answers the clients: nginx and both groups of web processes."""
    return sum(cpu_seconds.get(name, 0.0) for name in WEB_TIER)


def judge(report: dict) -> None:
    st, c, j = report["streams"], report["cost"], report["jobs"]
    errors = (sum(e["errors"] for e in report["endpoints"].values()) + report["drain_request_errors"] + st["errors"]
              + c["errors"])
    bad_jobs = j["accepted"] - j["succeeded"]
    polls = [e for name, e in report["endpoints"].items() if "/state" in name]

    def worst(key: str) -> float | None:
        values = [e[key] for e in polls if e[key] is not None]
        return max(values) if values else None

    def target(what: str, value, limit, unit: str) -> str:
        met = "met" if value is not None and value <= limit else "NOT met"
        return f"target {what} <= {limit:g} {unit}: {value} {unit} ({met})"

    report["targets"] = [target("event delay p95", st["delay_p95_ms"], EVENT_TARGET_P95_MS, "ms"),
                         target("poll p95 (whole run)", worst("p95_ms"), POLL_TARGET_P95_MS, "ms"),
                         target("poll p95 (after the ramp)", worst("steady_p95_ms"), POLL_TARGET_P95_MS, "ms"),
                         target("web CPU per unchanged poll", c["web_cpu_ms_per_poll"], UNCHANGED_POLL_TARGET_CPU_MS,
                                "ms")]
    report["passed"] = errors == 0 and bad_jobs == 0 and st["lost_finals"] == 0
    report["verdict"] = (f"{errors} request error(s); {st['lost_finals']} lost final event(s); {bad_jobs} of "
                         f"{j['accepted']} accepted job(s) did not succeed")


# -- main --------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--watchers", type=int, default=1000,
                        help="clients following their job's event stream, as job pages do (default 1000)")
    parser.add_argument("--pollers", type=int, default=200, help="API clients polling a job's state (default 200)")
    parser.add_argument("--etag-share", type=float, default=0.5,
                        help="share of pollers sending the ETag they have (default 0.5)")
    parser.add_argument("--submitters", type=int, default=20, help="clients submitting jobs (default 20)")
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="seconds between an answer and the next poll, ±20%% (default 1)")
    # One CPU worker finishes about one tiny job every 2-5 s on 2 busy cores (the visualisations
    # take most of it); 20 submitters every 20 s make 60 jobs a minute, plus one per person at the start.
    parser.add_argument("--submit-interval", type=float, default=20.0,
                        help="seconds between one submitter's jobs, ±20%% (default 20)")
    parser.add_argument("--ramp", type=float, default=10.0,
                        help="seconds over which the watchers open their first pages (at most half the run; "
                             "default 10: a thousand people do not open their pages in the same second)")
    parser.add_argument("--people", type=int, default=None,
                        help="accounts the clients are spread over (default: one per submitter)")
    parser.add_argument("--cost-clients", type=int, default=20,
                        help="clients polling unchanged jobs to measure a poll's web CPU (default 20)")
    parser.add_argument("--cost-seconds", type=float, default=10, help="seconds of that measure (default 10)")
    parser.add_argument("--drain-timeout", type=float, default=600, help="seconds to wait for the jobs (default 600)")
    parser.add_argument("--database-url", help="a PostgreSQL server to create (and drop) a database of its own on, "
                                               "e.g. postgres://postgres@127.0.0.1:5432/test (default: SQLite)")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 3),
                        help="web processes for pages (default WEB_CONCURRENCY or 3, as in production)")
    parser.add_argument("--live-workers", type=int, default=int(os.environ.get("LIVE_CONCURRENCY") or 1),
                        help="web processes for event streams and state polls (default LIVE_CONCURRENCY or 1)")
    parser.add_argument("--celery-workers", type=int, default=1, help="Celery worker processes (default 1)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    parser.add_argument("--smoke", action="store_true",
                        help="10 s, 50 watchers, 20 pollers, 2 submitters (every 4 s): checks that it works (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.watchers, args.pollers, args.submitters = 10, 50, 20, 2
        args.submit_interval = min(args.submit_interval, 4)  # a few jobs even in 10 s
        args.cost_clients, args.cost_seconds = 5, 3
    args.people = args.people or max(1, args.submitters)
    if not 0 <= args.etag_share <= 1:
        parser.error("--etag-share must be between 0 and 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    import load_clients

    def on_sigterm(_signum, _frame):
        raise KeyboardInterrupt  # the same clean-up as Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    folder = Path(tempfile.mkdtemp(prefix="load_test-"))
    services = Services(folder)
    database = None
    try:
        say(f"setting up in {folder}")
        redis_url = start_redis(services)
        if args.database_url:
            database = PostgresDatabase(args.database_url)  # set only once created: finally drops it
            database_url = database.url
        else:
            database_url = f"sqlite:///{folder / 'db.sqlite3'}"
        env = service_env(folder, database_url, redis_url)
        people = [load_clients.Person(**p) for p in prepare(env, args.people)]
        say(f"starting nginx in front of {args.web_workers} + {args.live_workers} uvicorn worker(s) (pages + live)")
        base = start_web(services, env, args)
        say(f"serving at {base}; database {'PostgreSQL' if database else 'SQLite'}")

        def workers() -> None:
            say(f"starting {args.celery_workers} Celery worker(s)")
            start_workers(services, env, args.celery_workers)

        result = asyncio.run(load_clients.run(
            base, people, watchers=args.watchers, pollers=args.pollers, etag_share=args.etag_share,
            submitters=args.submitters, duration=args.duration, poll_interval=args.poll_interval,
            submit_interval=args.submit_interval, params=JOB_PARAMS, drain_timeout=args.drain_timeout, say=say,
            cpu=lambda: cpu_snapshot(services, database), cost_clients=args.cost_clients,
            cost_seconds=args.cost_seconds, start_workers=workers, ramp=args.ramp))
        services.check_alive()
        result["cpu_seconds"] = load_clients.cpu_between(*result.pop("cpu_snapshots"))
        cost = result["cost"]
        cost["web_cpu_seconds"] = round(web_tier_cpu(cost.pop("cpu_seconds")), 2)
        cost["web_cpu_ms_per_poll"] = (round(1000 * cost["web_cpu_seconds"] / cost["polls"], 2) if cost["polls"]
                                       else None)
        report = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "database": "postgresql" if database else "sqlite", "cpus": os.cpu_count(),
                  "worker_pinning": " ".join(worker_pinning()),
                  "job_params": JOB_PARAMS, **result, "server_log_problems": server_log_problems(services)}
        judge(report)
        print_summary(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
            say(f"report written to {args.json}")
        return 0 if report["passed"] else 1
    except (SetupError, load_clients.SetupFailed) as error:
        say(f"failed: {error}")
        return 2
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second one must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        services.stop_all()
        if database:
            try:
                database.drop()
            except Exception as error:  # noqa: BLE001 (say so, and go on cleaning up)
                say(f"could not drop database {database.name}: {error}")
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_prepare"]:
        _prepare_in_child(int(sys.argv[2]))
    else:
        sys.exit(main(sys.argv[1:]))
