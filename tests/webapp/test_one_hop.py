"""webapp/one_hop.py: Django under ASGI with the middleware chain run in one thread hop. It must
answer every kind of request as Django's own ASGI handler does: pages and JSON with a session,
an async view, a file streamed from storage, a form POST refused for its missing CSRF token, a 404,
a redirect; the same status, the same headers (the middleware's), the same body where nothing in
it changes from one request to the next."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.core.handlers.asgi import ASGIHandler

from webapp.one_hop import OneHopASGIHandler

pytestmark = pytest.mark.django_db(transaction=True)  # the handlers' threads see what is committed
VOLATILE_HEADERS = {"date", "set-cookie", "vary"}  # Set-Cookie carries a new CSRF token each time


def ask(app, method: str, path: str, cookie: str = "", accept: str = "text/html", body: bytes = b""):
    """(status, headers, body) of one request through an ASGI application, as a server would send it."""
    sent, delivered = [], []

    async def receive():
        if not delivered:
            delivered.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays until the answer is sent

    async def send(message):
        sent.append(message)

    headers = [(b"host", b"testserver"), (b"accept", accept.encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if body:
        headers += [(b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "headers": headers}
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content


@pytest.fixture
def session_cookie(client, user):
    client.force_login(user)
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())


def test_it_answers_every_kind_of_request_as_djangos_own_asgi_handler(session_cookie, make_job, content):
    job = make_job()
    requests = [
        ("GET", f"/jobs/{job.pk}/status.json", session_cookie, "application/json"),  # a sync view, JSON
        ("GET", f"/jobs/{job.pk}/", session_cookie, "text/html"),  # a page, its template and CSP
        ("GET", f"/api/v1/jobs/{job.pk}/state", session_cookie, "application/json"),  # an async view
        ("GET", f"/images/{content.pk}/", session_cookie, "*/*"),  # a file streamed from storage
        ("GET", "/jobs/0b5e5c1e-3f43-4a57-9d0e-5c1f2a9e7b10/", session_cookie, "text/html"),  # 404
        ("GET", "/jobs/", session_cookie, "text/html"),  # a redirect
        ("GET", "/", "", "text/html"),  # no session: to the login page
        ("POST", "/accounts/login/", "", "text/html"),  # no CSRF token: 403
    ]
    ours, djangos = OneHopASGIHandler(), ASGIHandler()
    for method, path, cookie, accept in requests:
        body = b"username=someone&password=x" if method == "POST" else b""
        status, headers, content_bytes = ask(ours, method, path, cookie, accept, body)
        expected_status, expected_headers, expected_bytes = ask(djangos, method, path, cookie, accept, body)
        assert status == expected_status, path
        assert {k: v for k, v in headers.items() if k not in VOLATILE_HEADERS} == {
            k: v for k, v in expected_headers.items() if k not in VOLATILE_HEADERS}, path
        if headers.get("content-type", "").startswith("application/json"):
            # status.json carries a freshly signed ticket for the live stream: compare the fields' names.
            assert json.loads(content_bytes).keys() == json.loads(expected_bytes).keys(), path
        elif "csrfmiddlewaretoken" not in expected_bytes.decode(errors="replace"):
            assert content_bytes == expected_bytes, path
        else:  # a form: the same page but for its token
            assert len(content_bytes) == len(expected_bytes), path
    statuses = [ask(ours, m, p, c, a, b"x=1" if m == "POST" else b"")[0] for m, p, c, a in requests]
    assert statuses == [200, 200, 200, 200, 404, 302, 302, 403]
