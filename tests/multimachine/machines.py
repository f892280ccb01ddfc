"""Pretend machines on one host: a real S3 server (moto's standalone server, its own process on a
free port), a link to it that can be cut like a network (a TCP relay in this process), and worker
and reconciler processes that each get a MEDIA_ROOT and a VAR_DIR no other process sees.

    S3Server(folder).start()        `python -m moto.server` on 127.0.0.1:<free port>; .url .stop()
    Link(target_port).start()       a TCP relay on another free port; .url, .cut() (refuses and
                                    drops every connection, as an unreachable host would), .restore()
    Bucket(url, name)               boto3 on it: .create() .keys(prefix) .acl(key) .get(key)

The bucket's keys are the fake ones moto accepts (any will do); the region is us-east-1.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scripts.processes import free_port, kill_group, s3_server_command

ACCESS_KEY = "multimachine-test-key"
SECRET_KEY = "multimachine-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 60  # s; moto imports a lot


class S3Server:
    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "moto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> S3Server:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(s3_server_command(self.port), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"moto's S3 server did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Link:
    """A TCP relay to `target_port`: what the web and the workers know as the bucket's address.
    cut() closes the listening socket and every open connection (new ones are refused);
    restore() listens again on the same port."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Link:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        if listener is not None:
            _close(listener)
        for sock in sockets:
            _close(sock)

    def restore(self) -> Link:
        return self.start() if self._listener is None else self

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client), _close(upstream)
                    return
                self._open |= {client, upstream}
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with self._lock:
                    self._open.discard(sock)
                _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Bucket:
    """The test's own look at the bucket, straight to the server (not through the link)."""

    def __init__(self, url: str, name: str):
        import boto3

        self.name = name
        self.client = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                                   aws_secret_access_key=SECRET_KEY)

    def create(self) -> Bucket:
        self.client.create_bucket(Bucket=self.name)
        return self

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", ()))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def grants(self, key: str) -> list[dict]:
        return self.client.get_object_acl(Bucket=self.name, Key=key)["Grants"]


def storage_env(link_url: str, bucket: str, prefix: str) -> dict[str, str]:
    """The S3 settings every process of the test gets (the web's are set in-process)."""
    return {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": link_url, "S3_REGION": REGION, "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY, "S3_PREFIX": prefix, "S3_CONNECT_TIMEOUT": "2",
            "S3_READ_TIMEOUT": "10", "S3_MAX_ATTEMPTS": "2"}


def files_in(folder: Path) -> list[str]:
    """Every file under `folder` (a machine's local media folder must stay empty)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
