"""The client side of bench/load_test.py: asyncio + aiohttp, so one process holds a few hundred
connections cheaply. Knows nothing about how the servers were started; talks HTTP to `base`.

    pollers     each follows the newest job of its person, like the job page does: GET, wait
                about a second (the page's FAST delay) after the answer, again. Half of them
                (by default) poll the page's /jobs/<id>/status.json?step=N with a session
                cookie, the others GET /api/v1/jobs/<id>/ with a token.
    submitters  each POSTs a tiny job to /api/v1/jobs/ every `submit_interval` seconds.

Every response is recorded per endpoint: latency (until the whole body is read), status, size.
An error is anything but 2xx (redirects are not followed: a login redirect is an error too),
a time-out, a connection error, or a body that is not the JSON expected.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp

FINISHED = {"succeeded", "failed", "cancelled"}
REQUEST_TIMEOUT_S = 30  # past this a request counts as a time-out error


@dataclass
class Person:
    username: str
    token: str
    session_cookie: str  # "sessionid=…" header value
    content_id: str = ""
    style_id: str = ""
    jobs: list[str] = field(default_factory=list)  # accepted job ids, oldest first

    def api_headers(self) -> dict:
        return {"Authorization": f"Token {self.token}"}

    def page_headers(self) -> dict:
        # What the job page's fetch() sends: its session cookie and Accept: application/json.
        return {"Cookie": self.session_cookie, "Accept": "application/json"}


@dataclass
class Endpoint:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # kind -> count
    samples: list[str] = field(default_factory=list)  # the first few errors, for the report
    bytes: int = 0

    def summary(self, seconds: float) -> dict:
        ordered = sorted(self.latencies_ms)
        count = len(ordered)

        def pct(p: float) -> float | None:  # nearest rank
            return round(ordered[max(0, math.ceil(p / 100 * count) - 1)], 1) if count else None

        return {"requests": count, "per_second": round(count / seconds, 1) if seconds else None,
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
                "max_ms": round(ordered[-1], 1) if count else None,
                "mean_bytes": round(self.bytes / count) if count else None,
                "error_samples": self.samples}


class SetupFailed(Exception):
    """The clients could not prepare the run (upload images, submit the first jobs)."""


class Recorder:
    """Sends requests and keeps what happened, per endpoint name ("setup: …" and "drain: …" are
    the requests before and after the load phase, kept apart from its figures)."""

    def __init__(self, session: aiohttp.ClientSession):
        self.session = session
        self.endpoints: dict[str, Endpoint] = defaultdict(Endpoint)

    async def call(self, name: str, method: str, url: str, expect: tuple[int, ...] = (200,), **kwargs):
        """The parsed JSON body, or None on an error (which is recorded)."""
        stats = self.endpoints[name]
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, allow_redirects=False, **kwargs) as response:
                body = await response.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                stats.latencies_ms.append(elapsed_ms)
                stats.statuses[response.status] += 1
                stats.bytes += len(body)
                if response.status not in expect:
                    return self._error(stats, f"HTTP {response.status}",
                                       f"{method} {url} -> {response.status}: {body[:200]!r}")
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    return self._error(stats, "bad JSON", f"{method} {url}: {body[:200]!r}")
        except asyncio.TimeoutError:
            return self._error(stats, "timeout", f"{method} {url}: no answer in {REQUEST_TIMEOUT_S} s")
        except aiohttp.ClientError as exc:
            return self._error(stats, type(exc).__name__, f"{method} {url}: {exc}")

    @staticmethod
    def _error(stats: Endpoint, kind: str, detail: str) -> None:
        stats.errors[kind] += 1
        if len(stats.samples) < 5:
            stats.samples.append(detail)
        return None


def make_session(connections: int) -> aiohttp.ClientSession:
    # No cookie jar: each client sends its own person's cookie, nothing leaks between them.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                 cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))


def tiny_png(kind: str) -> bytes:
    """A 64×48 picture made here (nothing to download): a gradient for content, stripes for style."""
    from PIL import Image

    image = Image.new("RGB", (64, 48))
    image.putdata([(x * 4, y * 5, 128) if kind == "content" else ((255, 200, 0) if (x + y) // 4 % 2 else (20, 40, 160))
                   for y in range(48) for x in range(64)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def upload_images(rec: Recorder, base: str, people: list[Person]) -> None:
    pictures = {kind: tiny_png(kind) for kind in ("content", "style")}
    for person in people:
        for kind, data in pictures.items():
            form = aiohttp.FormData()
            form.add_field("file", data, filename=f"{kind}.png", content_type="image/png")
            answer = await rec.call("setup: upload", "POST", f"{base}/api/v1/images/", expect=(200, 201),
                                    data=form, headers=person.api_headers())
            if answer is None:
                raise SetupFailed(f"uploading an image failed: {rec.endpoints['setup: upload'].samples}")
            setattr(person, f"{kind}_id", answer["id"])


async def submit(rec: Recorder, base: str, person: Person, params: dict, name: str = "POST /api/v1/jobs/") -> None:
    body = {"content": person.content_id, "styles": [person.style_id], "params": params}
    answer = await rec.call(name, "POST", f"{base}/api/v1/jobs/", expect=(202,), json=body,
                            headers=person.api_headers())
    if answer is not None:
        person.jobs.append(answer["id"])


async def pause(seconds: float, stop_at: float) -> None:
    """About `seconds` (±20 %: clients drift apart, as real ones do), but not past the end of the load."""
    await asyncio.sleep(max(0.0, min(seconds * random.uniform(0.8, 1.2), stop_at - time.monotonic())))


async def poller(rec: Recorder, base: str, person: Person, page: bool, interval: float, stop_at: float,
                 backoff: bool = False) -> None:
    """Polls the person's newest job, `interval` after each answer. With `backoff`, as static/js/job.js
    does: after an answer that changed nothing the wait grows 1.5× up to 5 intervals, and a finished
    job is polled again only at that slow pace (the page stops; its person opens the next job)."""
    last_step: dict[str, int] = {}  # per job: the last step of the loss history this client has
    seen: dict[str, tuple] = {}  # per job: the page's signature() of the last answer
    delay, previous_job = interval, None
    await asyncio.sleep(random.uniform(0, interval))  # browsers do not all open at the same instant
    while time.monotonic() < stop_at:
        job = person.jobs[-1]
        if page:
            # The page sends ?step=<last step it has>; while the job is still there, the
            # server leaves the loss history out.
            answer = await rec.call("GET /jobs/<id>/status.json", "GET",
                                    f"{base}/jobs/{job}/status.json?step={last_step.get(job, -1)}",
                                    headers=person.page_headers())
            if answer and answer.get("loss_history"):
                last_step[job] = answer["loss_history"][-1]["step"]
        else:
            answer = await rec.call("GET /api/v1/jobs/<id>/", "GET", f"{base}/api/v1/jobs/{job}/",
                                    headers=person.api_headers())
        if backoff and answer:
            signature = (answer["status"], answer["step"], (answer.get("preview") or {}).get("version"),
                         answer["cancel_requested"], answer["attempts"])
            changed = job != previous_job or seen.get(job) != signature
            seen[job], previous_job = signature, job
            delay = interval if changed and answer["status"] not in FINISHED else min(5 * interval, delay * 1.5)
        await pause(delay, stop_at)


async def submitter(rec: Recorder, base: str, person: Person, params: dict, interval: float,
                    stop_at: float) -> None:
    await asyncio.sleep(random.uniform(0, interval))
    while time.monotonic() < stop_at:
        await submit(rec, base, person, params)
        await pause(interval, stop_at)


async def drain(rec: Recorder, base: str, people: list[Person], timeout: float, say) -> dict:
    """Waits until every accepted job has finished (or `timeout`); returns how they ended. Each round
    reads each person's job list (one request or a few), not every job: the worker needs the cores now."""
    pending = {job for person in people for job in person.jobs}
    accepted, outcome = len(pending), Counter()
    started = time.monotonic()
    last_said, told = 0.0, 0

    async def check(person: Person) -> None:
        nonlocal told
        url = f"{base}/api/v1/jobs/"
        while url:
            answer = await rec.call("drain: GET /api/v1/jobs/", "GET", url, headers=person.api_headers())
            if answer is None:
                return  # recorded as an error; the next round asks again
            for job in answer["results"]:
                if job["id"] in pending and job["status"] in FINISHED:
                    pending.discard(job["id"])
                    outcome[job["status"]] += 1
                    if job["status"] != "succeeded" and told < 3:
                        told += 1
                        say(f"job {job['id']} ended {job['status']}: {(job.get('error') or '')[:300]}")
            url = answer.get("next")

    while pending and time.monotonic() - started < timeout:
        await asyncio.gather(*(check(person) for person in people if pending.intersection(person.jobs)))
        if time.monotonic() - last_said > 10:
            last_said = time.monotonic()
            say(f"drain: {accepted - len(pending)}/{accepted} jobs finished ({time.monotonic() - started:.0f} s)")
        if pending:
            await asyncio.sleep(2)
    return {"accepted": accepted, "accepted_before_load": len(people), "succeeded": outcome["succeeded"],
            "failed": outcome["failed"], "cancelled": outcome["cancelled"], "unfinished": len(pending),
            "drain_seconds": round(time.monotonic() - started, 1)}


async def run(base: str, people: list[Person], *, pollers: int, api_share: float, submitters: int,
              duration: float, poll_interval: float, submit_interval: float, params: dict,
              drain_timeout: float, say, cpu=dict, backoff: bool = False, before_drain=lambda: None) -> dict:
    """Set-up requests, the load phase, then the drain; returns the figures. `cpu()` takes a snapshot of
    the CPU time used (opaque here), before and after the load phase."""
    async with make_session(pollers + submitters + 16) as session:
        rec = Recorder(session)
        # Set-up, not measured: two images per person, and one job each so that every
        # poller has a job to watch from the first second.
        await upload_images(rec, base, people)
        await asyncio.gather(*(submit(rec, base, person, params, "setup: POST /api/v1/jobs/") for person in people))
        if any(not person.jobs for person in people):
            raise SetupFailed(f"could not submit the first job of every person: "
                              f"{rec.endpoints['setup: POST /api/v1/jobs/'].samples}")

        # Poller i is the n-th of person i % len(people), n = i // len(people); it uses the API when
        # the count of API pollers steps up at n, so each person has both kinds in the share asked for.
        steps_up = [int((n + 1) * api_share) > int(n * api_share) for n in range(pollers)]
        on_api = [steps_up[i // len(people)] for i in range(pollers)]
        say(f"load: {pollers} pollers ({sum(on_api)} on the API), {submitters} submitters, {duration:g} s")
        load_avg_before = _loadavg()
        cpu_before = cpu()
        started = time.monotonic()
        stop_at = started + duration
        tasks = [poller(rec, base, people[i % len(people)], page=not on_api[i], interval=poll_interval,
                        stop_at=stop_at, backoff=backoff) for i in range(pollers)]
        tasks += [submitter(rec, base, people[i % len(people)], params, submit_interval, stop_at)
                  for i in range(submitters)]
        await asyncio.gather(*tasks)
        seconds = time.monotonic() - started
        cpu_after = cpu()
        load_avg_during = _loadavg()  # 1-minute average: about the load phase itself

        endpoints = {name: stats.summary(seconds) for name, stats in rec.endpoints.items()
                     if not name.startswith("setup")}
        say("load phase over; waiting for every accepted job to finish")
        before_drain()
        jobs = await drain(rec, base, people, drain_timeout, say)
        drain_errors = rec.endpoints["drain: GET /api/v1/jobs/"].summary(1)
        return {"seconds": round(seconds, 1), "endpoints": endpoints, "jobs": jobs,
                "drain_request_errors": drain_errors["errors"], "drain_error_samples": drain_errors["error_samples"],
                "load_average_before": load_avg_before, "load_average_end_of_load": load_avg_during,
                "cpu_snapshots": (cpu_before, cpu_after)}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None
