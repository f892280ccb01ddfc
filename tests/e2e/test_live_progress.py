"""The job page follows its job through the event stream of the real web tier (nginx routing to a
group of web processes for pages and one for live progress, gunicorn with uvicorn workers, as
production runs it), fed by the real worker through Redis; when the live group restarts in the
middle of the job, the page's stream reconnects by itself and the page still ends on the result,
without a reload and without falling back to polling."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from scripts import router
from scripts.processes import free_port, kill_group
from tests.processes import REPO_ROOT, database_url_for_subprocesses, wait_until
from webapp.jobs import lifecycle
from webapp.models import StyleJob

pytestmark = [pytest.mark.django_db(transaction=True),  # the servers and the worker see what is committed
              pytest.mark.skipif(router.nginx_binary() is None,
                                 reason="nginx is not installed (make test installs it)")]

WAIT = 180_000  # ms


class Group:
    """One group of web processes (docker/gunicorn.conf.py, one process) on a free port, its log in
    a file; restartable."""

    def __init__(self, env: dict[str, str], log_path):
        self.env, self.log_path = env, log_path
        self.address = f"127.0.0.1:{free_port()}"
        self.process = None

    def start(self) -> "Group":
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = _spawn(router.gunicorn_command(sys.executable, self.address, 1), self.env, self.log_path)
        wait_until(lambda: _answers(self.process, f"http://{self.address}/health/", self.log), 120,
                   lambda: f"the web server did not start:\n{self.log()[-3000:]}", every=0.3)
        return self

    def kill(self) -> None:
        kill_group(self.process)

    def log(self, since_start: bool = False) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[self.log_offset:] if since_start else text


class WebTier:
    """nginx with docker/router.conf.template in front of a pages group and a live group."""

    def __init__(self, env: dict[str, str], folder):
        self.pages = Group(router.group_env(env, "pages"), folder / "pages.log").start()
        self.live = Group(router.group_env(env, "live"), folder / "live.log").start()
        tier = router.WebTier(listen=f"127.0.0.1:{free_port()}", pages=self.pages.address, live=self.live.address)
        self.url = f"http://{tier.listen}"
        self.router_log = folder / "router.log"
        self.router = _spawn(tier.router_command(folder / "router", router.nginx_binary()), env, self.router_log)
        wait_until(lambda: _answers(self.router, self.url + "/health/", self.router_log.read_text), 30,
                   lambda: f"the router did not start:\n{self.router_log.read_text()}", every=0.1)

    def log(self) -> str:
        return (f"--- pages ---\n{self.pages.log()[-3000:]}\n--- live ---\n{self.live.log()[-3000:]}\n"
                f"--- router ---\n{self.router_log.read_text()[-2000:]}")

    def stop(self) -> None:
        for process in (self.router, self.live.process, self.pages.process):
            kill_group(process)


def _spawn(argv: list[str], env: dict[str, str], log_path) -> subprocess.Popen:
    with open(log_path, "a") as log:
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _answers(process: subprocess.Popen, url: str, log) -> bool:
    if process.poll() is not None:
        pytest.fail(f"{process.args[0]} exited:\n{log()[-3000:]}")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def web_server(worker, redis_url, django_db_blocker, tmp_path, python_env):
    static = tmp_path / "static"
    env = {**python_env, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0",
           "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0", "REDIS_URL": redis_url,
           "CELERY_BROKER_URL": redis_url, "MEDIA_ROOT": str(worker.media_root), "VAR_DIR": str(tmp_path),
           "STATIC_ROOT": str(static), "WEB_CONCURRENCY": "1"}
    with django_db_blocker.unblock():
        env["DATABASE_URL"] = database_url_for_subprocesses()
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=REPO_ROOT, env=env,
                   check=True, timeout=120)
    tier = WebTier(env, tmp_path)
    yield tier
    tier.stop()


def test_the_page_follows_the_stream_through_a_server_restart_and_ends_on_the_result(
        page, web_server, worker, broker, shared_media, django_user_model, upload, artifacts):
    person = django_user_model.objects.create_user("ida", password="a long and unusual passphrase")
    content, style = upload(person, "content"), upload(person, "style")
    page.goto(f"{web_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ida")
    page.get_by_label("Password").fill("a long and unusual passphrase")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))

    def explain() -> str:
        row = StyleJob.objects.get(pk=job.pk)
        return (f"the page shows {page.locator('#progress-text').inner_text()!r}; the job is {row.status} at step "
                f"{row.step}\n{worker.tail()}\n{web_server.log()}")

    # The worker is held (its pool process stopped) whenever the test needs the job to wait: while
    # the page opens its stream, and while the server crashes and comes back, so the page picks the
    # stream up again in the middle of the job whatever the machine's speed.
    with held(worker):
        job = lifecycle.create_job(person, content, [style], {"size": 48, "scales": 1, "iterations": 300, "seed": 5})
        page.goto(f"{web_server.url}/jobs/{job.pk}/")
        page.evaluate("window.__sameDocument = true")
        # Pushed, not polled, and by the live group.
        wait_until(lambda: f"GET /jobs/{job.pk}/events" in web_server.live.log(), 60, explain)
    assert f"/jobs/{job.pk}/events" not in web_server.pages.log()
    page.locator("#progress-text", has_text="iteration").wait_for(timeout=WAIT)

    with held(worker):
        pages_before = len(web_server.pages.log())
        web_server.live.kill()  # the stream drops; while the group is away the router sends it to pages
        web_server.live.start()
        assert StyleJob.objects.get(pk=job.pk).status == StyleJob.Status.RUNNING, explain()
        before = page.locator("#progress").evaluate("bar => bar.value")
    # The page reconnects by itself and moves on with the job, then ends on the result.
    try:
        page.wait_for_function("before => document.getElementById('progress').value > before", arg=before,
                               timeout=WAIT)
        page.locator("#status-badge", has_text="Succeeded").wait_for(timeout=WAIT)
        page.wait_for_function("() => { const i = document.getElementById('stage-image');"
                               " return i.src.includes('result.png') && i.complete && i.naturalWidth > 0; }",
                               timeout=WAIT)
    except Exception:
        pytest.fail(explain())
    assert StyleJob.objects.get(pk=job.pk).status == StyleJob.Status.SUCCEEDED
    assert page.evaluate("window.__sameDocument") is True
    since = web_server.live.log(since_start=True) + web_server.pages.log()[pages_before:]
    assert f"GET /jobs/{job.pk}/events" in since and "status.json" not in since
    page.screenshot(path=str(artifacts / "job_after_server_restart.png"), full_page=False)
    assert page.js_errors == []


@contextlib.contextmanager
def held(worker):
    """The worker's pool process stopped (SIGSTOP) for the block, and let go (SIGCONT) after it."""
    pids = worker.pool_pids()
    assert pids, worker.tail()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
