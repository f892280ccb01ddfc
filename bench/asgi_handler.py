"""CPU per request of Django under ASGI: Django's own handler (a thread hop per synchronous middleware
method) against webapp/one_hop.py's (the whole chain in one hop), in one process, on the requests a
person's browser makes: the job page's status.json (what the page asks when it opens) and the job
page itself, both with a logged-in session.

    .venv/bin/python bench/asgi_handler.py              # 400 requests of each kind per handler and round, 3 rounds
    .venv/bin/python bench/asgi_handler.py --smoke      # 20 and 1 round (CI)

Everything runs in a temporary folder (a SQLite database, the media); the requests go straight to
the ASGI application (no server, no sockets), 8 at a time (--concurrency), the two handlers
taking turns so that a change in the machine's speed hits both. Prints CPU ms per request (all
threads of this process) and the ratio one-hop / Django's.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def set_up(folder: Path) -> tuple[str, str]:
    """Settings in `folder`, a person with a session and a job; (the session cookie, the job's id)."""
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "webapp.settings", "DEBUG": "0", "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "testserver", "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0", "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "VAR_DIR": str(folder),
        "MEDIA_ROOT": str(folder / "media"), "STATIC_ROOT": str(folder / "static"), "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING"})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from PIL import Image

    from webapp.jobs import lifecycle, storage

    call_command("migrate", interactive=False, verbosity=0)
    person = get_user_model().objects.create_user("bench", password=None)

    def png(colour) -> SimpleUploadedFile:
        out = io.BytesIO()
        Image.new("RGB", (40, 32), colour).save(out, "PNG")
        return SimpleUploadedFile("tiny.png", out.getvalue())

    job = lifecycle.create_job(person, storage.store_upload(person, png((200, 40, 40))),
                               [storage.store_upload(person, png((20, 40, 220)))],
                               {"size": 32, "scales": 1, "iterations": 2, "seed": 1})
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(person.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = person.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}", str(job.pk)


async def ask(app, path: str, cookie: str, accept: str) -> int:
    sent, asked = [], []

    async def receive():
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays until the answer is sent (then this is cancelled)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode()), (b"accept", accept.encode())]}
    await app(scope, receive, send)
    return sent[0]["status"]


async def cpu_ms_per_request(app, path: str, cookie: str, accept: str, count: int, concurrency: int) -> float:
    queue = list(range(count))
    statuses = []

    async def client():
        while queue:
            queue.pop()
            statuses.append(await ask(app, path, cookie, accept))

    before = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    spent = time.process_time() - before
    if set(statuses) != {200}:
        raise SystemExit(f"{path}: answers {sorted(set(statuses))}, not 200")
    return 1000 * spent / count


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests of each kind per handler and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    parser.add_argument("--smoke", action="store_true", help="20 requests, 1 round: checks that it works (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.rounds = 20, 1
    with tempfile.TemporaryDirectory(prefix="asgi_handler-") as folder:
        cookie, job = set_up(Path(folder))
        from django.core.handlers.asgi import ASGIHandler

        from webapp.one_hop import OneHopASGIHandler

        handlers = {"django": ASGIHandler(), "one_hop": OneHopASGIHandler()}
        kinds = {"status.json": (f"/jobs/{job}/status.json", "application/json"),
                 "job page": (f"/jobs/{job}/", "text/html")}
        spent = {(h, k): [] for h in handlers for k in kinds}
        for _ in range(args.rounds + 1):  # the first round warms up (imports, templates, caches)
            for kind, (path, accept) in kinds.items():
                for name, app in handlers.items():
                    spent[name, kind].append(asyncio.run(
                        cpu_ms_per_request(app, path, cookie, accept, args.requests, args.concurrency)))
        print(f"CPU ms per request ({args.requests} requests x {args.rounds} round(s), {args.concurrency} at a time, "
              f"median of the rounds after a warm-up):")
        for kind in kinds:
            medians = {name: sorted(spent[name, kind][1:])[len(spent[name, kind][1:]) // 2] for name in handlers}
            print(f"  {kind:12} Django's handler {medians['django']:.2f}  one hop {medians['one_hop']:.2f}  "
                  f"ratio {medians['one_hop'] / medians['django']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
