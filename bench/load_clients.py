"""The client side of bench/load_test.py: asyncio + aiohttp, so one process holds a thousand
connections cheaply. Knows nothing about how the servers were started; talks HTTP to `base`.

    watchers    each follows the newest job of its person as the job page does: its state
                (status.json, with a session cookie: what a page load asks, and the ticket to the
                stream) then the job's event stream (/jobs/<id>/events?ticket=…), until its `end`
                event, then the person's next job. Each event's delay is the time between the worker's
                publish (the event's `published`) and its arrival here (one machine, one clock).
    pollers     each asks for the newest job of its person through the API's cheap poll
                (/api/v1/jobs/<id>/state, with a token) about once a second; a share of them
                (half by default) send the ETag they have, and mostly get 304.
    submitters  each POSTs a tiny job to /api/v1/jobs/ every `submit_interval` seconds.

Every response is recorded per endpoint: latency (until the whole body is read), status, size.
An error is anything but 2xx or the 304 asked for (redirects are not followed: a login
redirect is an error too), a time-out, a connection error, or a body that is not the JSON
expected. A stream that ends without its job's `end` event is a lost final event.
"""

from __future__ import annotations

import asyncio
import io
import json
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
    steady_ms: list[float] = field(default_factory=list)  # latencies of the requests sent after the ramp

    def summary(self, seconds: float) -> dict:
        count = len(self.latencies_ms)
        whole, steady = percentiles(self.latencies_ms), percentiles(self.steady_ms)
        return {"requests": count, "per_second": round(count / seconds, 1) if seconds else None,
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "p50_ms": whole[50], "p95_ms": whole[95], "p99_ms": whole[99],
                "max_ms": round(max(self.latencies_ms), 1) if count else None,
                "steady_requests": len(self.steady_ms), "steady_p50_ms": steady[50], "steady_p95_ms": steady[95],
                "steady_p99_ms": steady[99],
                "mean_bytes": round(self.bytes / count) if count else None,
                "error_samples": self.samples}


def percentiles(values: list[float]) -> dict[int, float | None]:
    """p50, p95 and p99 by nearest rank, in ms rounded to 0.1; None when there are no values."""
    ordered = sorted(values)
    return {p: round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1) if ordered else None
            for p in (50, 95, 99)}


class SetupFailed(Exception):
    """The clients could not prepare the run (upload images, submit the first jobs)."""


class Recorder:
    """Sends requests and keeps what happened, per endpoint name ("setup: …" and "drain: …" are
    the requests before and after the load phase, kept apart from its figures)."""

    def __init__(self, session: aiohttp.ClientSession):
        self.session = session
        self.endpoints: dict[str, Endpoint] = defaultdict(Endpoint)
        self.steady_from = math.inf  # time.monotonic() from which a request counts as after the ramp

    async def call(self, name: str, method: str, url: str, expect: tuple[int, ...] = (200,), **kwargs):
        """The parsed JSON body ({} for a 304), or None on an error (which is recorded)."""
        stats = self.endpoints[name]
        steady = time.monotonic() >= self.steady_from
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, allow_redirects=False, **kwargs) as response:
                body = await response.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                stats.latencies_ms.append(elapsed_ms)
                if steady:
                    stats.steady_ms.append(elapsed_ms)
                stats.statuses[response.status] += 1
                stats.bytes += len(body)
                if response.status not in expect:
                    return self._error(stats, f"HTTP {response.status}",
                                       f"{method} {url} -> {response.status}: {body[:200]!r}")
                if response.status == 304:
                    return {"_etag": response.headers.get("ETag")}
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    return self._error(stats, "bad JSON", f"{method} {url}: {body[:200]!r}")
                if isinstance(answer, dict) and "ETag" in response.headers:
                    answer["_etag"] = response.headers["ETag"]
                return answer
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


async def poller(rec: Recorder, base: str, person: Person, etag: bool, interval: float, stop_at: float) -> None:
    """Polls the state of the person's newest job through the API's cheap poll, `interval` after each
    answer; with `etag`, sending the ETag of the last answer (If-None-Match), as a careful client does."""
    last: dict[str, str] = {}  # job -> its last ETag
    name = "GET /api/v1/jobs/<id>/state" + (" (If-None-Match)" if etag else "")
    await asyncio.sleep(random.uniform(0, interval))
    while time.monotonic() < stop_at:
        job = person.jobs[-1]
        headers = person.api_headers()
        if etag and job in last:
            headers["If-None-Match"] = last[job]
        answer = await rec.call(name, "GET", f"{base}/api/v1/jobs/{job}/state", expect=(200, 304), headers=headers)
        if answer is not None and answer.get("_etag"):
            last[job] = answer["_etag"]
        await pause(interval, stop_at)


@dataclass
class Streams:
    """What the watchers saw: event delays, streams open, final events."""
    delays_ms: list[float] = field(default_factory=list)
    events: int = 0
    open_now: int = 0
    open_max: int = 0
    open_samples: list[int] = field(default_factory=list)
    connects: int = 0
    reconnects: int = 0  # a stream that dropped before its job's end, opened again (as EventSource does)
    finals: int = 0  # jobs followed to their final state and `end`
    lost_finals: int = 0  # jobs followed whose final state never came
    errors: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(detail)

    def summary(self) -> dict:
        delay = percentiles(self.delays_ms)
        return {"events": self.events, "delay_p50_ms": delay[50], "delay_p95_ms": delay[95],
                "delay_p99_ms": delay[99],
                "delay_max_ms": round(max(self.delays_ms), 1) if self.delays_ms else None, "connects": self.connects,
                "reconnects": self.reconnects,
                "open_max": self.open_max,
                "open_mean": round(sum(self.open_samples) / len(self.open_samples)) if self.open_samples else 0,
                "finals": self.finals, "lost_finals": self.lost_finals, "errors": sum(self.errors.values()),
                "error_kinds": dict(self.errors), "error_samples": self.samples}


async def watcher(rec: Recorder, session: aiohttp.ClientSession, base: str, person: Person, streams: Streams,
                  stop_at: float, finish_by: float, ramp: float) -> None:
    """Follows the person's newest job through its event stream, as the job page does; after
    `stop_at` it follows no new job, but stays until the one it has ends (at most `finish_by`).
    Its first page opens at a random moment of the first `ramp` seconds."""
    followed: set[str] = set()
    await asyncio.sleep(random.uniform(0, ramp))
    while time.monotonic() < stop_at:
        job = person.jobs[-1]
        if job in followed:  # its end came; wait for the person's next job
            await asyncio.sleep(0.5)
            continue
        followed.add(job)
        page = await rec.call("GET /jobs/<id>/status.json (opening the page)", "GET", f"{base}/jobs/{job}/status.json",
                              headers=person.page_headers())
        if page is not None:
            await follow(session, base + page["events_url"], person, streams, finish_by)


async def follow(session: aiohttp.ClientSession, url: str, person: Person, streams: Streams,
                 finish_by: float) -> None:
    """One job's stream until its `end`, reconnecting as EventSource does (after the server's
    `retry`, with Last-Event-ID) when it drops; a final state never received is a lost one."""
    last_id, retry_s = None, 2.0
    while time.monotonic() < finish_by:
        streams.connects += 1
        outcome, last_id, retry_s = await _stream_once(session, url, streams, finish_by, last_id, retry_s)
        if outcome == "ended":
            streams.finals += 1
            return
        if outcome == "refused":
            break
        streams.reconnects += 1
        await asyncio.sleep(retry_s)
    streams.lost_finals += 1
    streams.error("no final state", f"GET {url}: its job's final state never came")


async def _stream_once(session: aiohttp.ClientSession, url: str, streams: Streams, finish_by: float,
                       last_id: str | None, retry_s: float) -> tuple[str, str | None, float]:
    """("ended" | "dropped" | "refused", the last event id, the retry delay) of one connection."""
    event, finished = "message", False
    headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
    try:
        timeout = aiohttp.ClientTimeout(total=max(1.0, finish_by - time.monotonic()), sock_connect=REQUEST_TIMEOUT_S)
        async with session.get(url, headers=headers, allow_redirects=False, timeout=timeout) as response:
            if response.status != 200:
                streams.error(f"HTTP {response.status}", f"GET {url} -> {response.status}")
                return "refused", last_id, retry_s
            streams.open_now += 1
            streams.open_max = max(streams.open_max, streams.open_now)
            try:
                async for raw in response.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("id: "):
                        last_id = line[4:]
                    elif line.startswith("retry: "):
                        retry_s = int(line[7:]) / 1000
                    elif line.startswith("data: "):
                        arrived = time.time()
                        if event == "end":
                            return ("ended" if finished else "dropped"), last_id, retry_s
                        state = json.loads(line[6:])
                        streams.events += 1
                        finished = bool(state.get("finished"))
                        if "published" in state:
                            streams.delays_ms.append((arrived - state["published"]) * 1000)
                    elif not line:
                        event = "message"
            finally:
                streams.open_now -= 1
        return "dropped", last_id, retry_s
    except asyncio.TimeoutError:
        return "dropped", last_id, retry_s
    except (aiohttp.ClientError, ValueError) as exc:
        streams.error(type(exc).__name__, f"GET {url}: {exc}")
        return "dropped", last_id, retry_s


async def sample_open_streams(streams: Streams, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        streams.open_samples.append(streams.open_now)
        await asyncio.sleep(1)


async def poll_cost(rec: Recorder, base: str, people: list[Person], clients: int, seconds: float) -> int:
    """`clients` pollers asking, back to back for `seconds`, about jobs that no longer change, with
    their ETag: the web's cost of an unchanged poll. Returns the number of polls."""
    stop_at = time.monotonic() + seconds
    name = "cost: GET /api/v1/jobs/<id>/state (If-None-Match, unchanged)"

    async def one(person: Person) -> None:
        url = f"{base}/api/v1/jobs/{person.jobs[0]}/state"
        first = await rec.call(name.replace("cost:", "setup:"), "GET", url, headers=person.api_headers())
        etag = (first or {}).get("_etag")
        while time.monotonic() < stop_at:
            await rec.call(name, "GET", url, expect=(304,), headers={**person.api_headers(), "If-None-Match": etag})

    await asyncio.gather(*(one(people[i % len(people)]) for i in range(clients)))
    return len(rec.endpoints[name].latencies_ms)


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


async def run(base: str, people: list[Person], *, watchers: int, pollers: int, etag_share: float, submitters: int,
              duration: float, poll_interval: float, submit_interval: float, params: dict, drain_timeout: float,
              say, cpu=dict, cost_clients: int = 20, cost_seconds: float = 10,
              start_workers=lambda: None, ramp: float = 10.0) -> dict:
    """Set-up requests and the cost of an unchanged poll (before any worker runs, so no job changes),
    then the workers start and the load phase runs, then the drain; returns the figures. `cpu()`
    takes a snapshot of the CPU time used (opaque here). The watchers open their first pages over
    the first `ramp` seconds (at most half the run); each endpoint's figures are given for the
    whole run and for the requests sent after the ramp (`steady_*`)."""
    async with make_session(pollers + submitters + cost_clients + 16) as session, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()) as streaming:
        rec = Recorder(session)
        # Set-up, not measured: two images per person, and one job each so that every
        # client has a job to follow from the first second.
        await upload_images(rec, base, people)
        await asyncio.gather(*(submit(rec, base, person, params, "setup: POST /api/v1/jobs/") for person in people))
        if any(not person.jobs for person in people):
            raise SetupFailed(f"could not submit the first job of every person: "
                              f"{rec.endpoints['setup: POST /api/v1/jobs/'].samples}")

        say(f"cost of an unchanged poll: {cost_clients} clients for {cost_seconds:g} s, no worker running")
        cost_before = cpu()
        polls = await poll_cost(rec, base, people, cost_clients, cost_seconds)
        cost_cpu = cpu_between(cost_before, cpu())
        start_workers()

        say(f"load: {watchers} watchers (event streams), {pollers} pollers ({round(pollers * etag_share)} with "
            f"ETags), {submitters} submitters, {duration:g} s")
        streams = Streams()
        load_avg_before = _loadavg()
        cpu_before = cpu()
        started = time.monotonic()
        stop_at = started + duration
        ramp = min(ramp, duration / 2)
        rec.steady_from = started + ramp
        finish_by = stop_at + drain_timeout
        watching = [asyncio.ensure_future(watcher(rec, streaming, base, people[i % len(people)], streams, stop_at,
                                                  finish_by, ramp)) for i in range(watchers)]
        tasks = [poller(rec, base, people[i % len(people)], etag=i < round(pollers * etag_share),
                        interval=poll_interval, stop_at=stop_at) for i in range(pollers)]
        tasks += [submitter(rec, base, people[i % len(people)], params, submit_interval, stop_at)
                  for i in range(submitters)]
        await asyncio.gather(*tasks, sample_open_streams(streams, stop_at))
        seconds = time.monotonic() - started
        cpu_after = cpu()
        load_avg_during = _loadavg()  # 1-minute average: about the load phase itself

        endpoints = {name: stats.summary(seconds) for name, stats in rec.endpoints.items()
                     if not name.startswith(("setup", "cost"))}
        say("load phase over; waiting for every accepted job to finish (the watchers stay for their jobs' end)")
        jobs = await drain(rec, base, people, drain_timeout, say)
        _, unfinished = await asyncio.wait(watching, timeout=60)
        for task in unfinished:
            task.cancel()
        drain_errors = rec.endpoints["drain: GET /api/v1/jobs/"].summary(1)
        return {"seconds": round(seconds, 1), "ramp_seconds": ramp, "endpoints": endpoints, "streams": streams.summary(), "jobs": jobs,
                "cost": {"polls": polls, "seconds": cost_seconds, "cpu_seconds": cost_cpu,
                         "errors": sum(rec.endpoints[n].summary(1)["errors"] for n in rec.endpoints
                                       if n.startswith("cost"))},
                "drain_request_errors": drain_errors["errors"], "drain_error_samples": drain_errors["error_samples"],
                "load_average_before": load_avg_before, "load_average_end_of_load": load_avg_during,
                "cpu_snapshots": (cpu_before, cpu_after)}


def cpu_between(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds between two snapshots of {(service, pid): seconds}, per service."""
    used: dict[str, float] = {}
    for (name, pid), seconds in after.items():
        used[name] = used.get(name, 0.0) + seconds - before.get((name, pid), 0.0)
    return {name: round(seconds, 2) for name, seconds in used.items()}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None
