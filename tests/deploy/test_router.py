"""The router in front of the web tier (docker/router.conf.template, scripts/router.py), run for real:
nginx with the rendered template in front of two small HTTP servers that say which group they are
and echo what reached them. What is under test is nginx's configuration: which paths go to the
live group, that events are not held back in a buffer, that the client's address is added to
X-Forwarded-For, that the Host header and large bodies pass unchanged."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts import router

JOB = "0b5e5c1e-3f43-4a57-9d0e-5c1f2a9e7b10"
pytestmark = pytest.mark.skipif(router.nginx_binary() is None, reason="nginx is not installed (make test installs it)")


def group_server(name: str) -> ThreadingHTTPServer:
    """Answers every request with {"group": name, "path", "host", "forwarded_for", "body_bytes"}; a
    path ending in /events answers as a stream: one event, a pause of 1.5 s, a second event."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def dead(self) -> bool:
            """A stopped group's kept-alive connections die with it, as a killed process's do."""
            if self.server.stopped:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            return self.server.stopped

        def do_GET(self):
            if self.dead():
                return
            if self.path.split("?")[0].endswith("/events"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in (b"data: first\n\n", b"data: second\n\n"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                    time.sleep(1.5)
                self.wfile.write(b"0\r\n\r\n")
                return
            self._answer(0)

        def do_POST(self):
            if self.dead():
                return
            length = int(self.headers.get("Content-Length") or 0)
            received = 0
            while received < length:
                received += len(self.rfile.read(min(65536, length - received)))
            self._answer(received)

        def _answer(self, body_bytes: int):
            body = json.dumps({"group": name, "path": self.path, "host": self.headers.get("Host"),
                               "forwarded_for": self.headers.get("X-Forwarded-For"),
                               "body_bytes": body_bytes}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.stopped = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Routed:
    """nginx with the rendered template in front of two stand-in groups, each stoppable."""

    def __init__(self, run_dir):
        self.groups = {"pages": group_server("pages"), "live": group_server("live")}
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        tier = router.WebTier(listen=f"127.0.0.1:{self.port}", pages=self._address("pages"), live=self._address("live"))
        self.nginx = subprocess.Popen(tier.router_command(run_dir, router.nginx_binary()), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.nginx.poll() is None, self.nginx.stdout.read().decode()
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)

    def _address(self, name: str) -> str:
        return "127.0.0.1:%d" % self.groups[name].server_address[1]

    def stop_group(self, name: str) -> None:
        self.groups[name].stopped = True
        self.groups[name].shutdown()
        self.groups[name].server_close()  # nothing listens there any more: connections are refused

    def close(self) -> None:
        self.nginx.terminate()
        self.nginx.wait(timeout=10)
        for server in self.groups.values():
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """(host, port) of nginx in front of the two stand-in groups."""
    setup = Routed(tmp_path_factory.mktemp("router"))
    yield "127.0.0.1", setup.port
    setup.close()


def ask(routed, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
    connection = http.client.HTTPConnection(*routed, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    return json.loads(response.read())


@pytest.mark.parametrize("path, group", [
    (f"/api/v1/jobs/{JOB}/state", "live"),
    (f"/api/v1/jobs/{JOB}/state?wait=20", "live"),
    (f"/api/v1/jobs/{JOB}/", "pages"),
    (f"/api/v1/jobs/{JOB}/state/extra", "pages"),
    (f"/jobs/{JOB}/", "pages"),
    (f"/jobs/{JOB}/status.json", "pages"),
    ("/", "pages"),
    ("/health/", "pages"),
])
def test_the_live_requests_go_to_the_live_group_and_the_rest_to_pages(routed, path, group):
    answer = ask(routed, "GET", path)
    assert answer["group"] == group
    assert answer["path"] == path  # query strings too


def test_an_event_stream_goes_to_the_live_group_and_each_event_arrives_when_it_is_sent(routed):
    connection = http.client.HTTPConnection(*routed, timeout=10)
    connection.request("GET", f"/jobs/{JOB}/events?ticket=abc", headers={"Accept": "text/event-stream"})
    response = connection.getresponse()
    assert response.status == 200
    started = time.monotonic()
    assert response.readline() == b"data: first\n"
    # The second event is sent 1.5 s after the first: the first must arrive on its own, before it.
    assert time.monotonic() - started < 1.0
    assert response.read().strip() == b"data: second"


def test_the_clients_address_is_added_to_x_forwarded_for_and_the_host_kept(routed):
    answer = ask(routed, "GET", "/jobs/", headers={"Host": "styles.example", "X-Forwarded-For": "203.0.113.9"})
    assert answer["host"] == "styles.example"
    # The proxy before it said 203.0.113.9; the router adds the address that connected to it.
    assert answer["forwarded_for"] == "203.0.113.9, 127.0.0.1"
    assert ask(routed, "GET", "/jobs/")["forwarded_for"] == "127.0.0.1"


def test_large_uploads_reach_the_application_whose_limits_answer_them(routed):
    body = b"x" * (24 * 1024 * 1024)  # past nginx's default of 1 MB
    answer = ask(routed, "POST", "/api/v1/images/", body=body, headers={"Content-Type": "application/octet-stream"})
    assert answer == {**answer, "group": "pages", "body_bytes": len(body)}


def test_the_template_has_a_placeholder_for_each_value_the_launchers_and_compose_give_it():
    names = set(router.PLACEHOLDER.findall(router.TEMPLATE.read_text()))
    assert names == {"RUN_DIR", "LISTEN", "PAGES_ADDRESS", "LIVE_ADDRESS"}
    with pytest.raises(KeyError, match="LIVE_ADDRESS"):
        router.render({"RUN_DIR": "/tmp", "LISTEN": "8000", "PAGES_ADDRESS": "web:8000"})


@pytest.mark.parametrize("down, path", [("live", f"/api/v1/jobs/{JOB}/state"), ("pages", f"/jobs/{JOB}/")])
def test_while_one_group_is_down_the_other_answers_its_requests(tmp_path, down, path):
    setup = Routed(tmp_path)
    try:
        up = "pages" if down == "live" else "live"
        assert ask(("127.0.0.1", setup.port), "GET", path)["group"] == down
        setup.stop_group(down)
        for _ in range(3):  # the first finds the connection refused and is retried on the backup
            assert ask(("127.0.0.1", setup.port), "GET", path)["group"] == up
        posted = ask(("127.0.0.1", setup.port), "POST", path, body=b"{}")
        assert posted["group"] == up and posted["body_bytes"] == 2
    finally:
        setup.close()
