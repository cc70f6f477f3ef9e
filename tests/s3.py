"""A real S3 API on loopback for the tests (the ``s3`` fixture, registered in conftest): moto's
server, behind a small proxy that counts requests and can answer with faults (503 SlowDown) on
demand.

The proxy is the test's view of the wire: every request the client libraries make passes
through it, so a test can count what a run asked of the store, or make the store fail.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

FAULT_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Wire:
    """What went through the proxy, and the faults it is told to make."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    fail: Callable[[str, str], bool] = lambda method, path: False
    faults: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self.lock:
            return sum(
                1 for m, p in self.requests if (method is None or m == method) and contains in p
            )

    def by_method(self) -> Counter[str]:
        with self.lock:
            return Counter(m for m, _ in self.requests)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults = 0
        self.fail = lambda method, path: False


def start_proxy(upstream: str, wire: Wire) -> tuple[ThreadingHTTPServer, str]:
    host, port = upstream.removeprefix("http://").split(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with wire.lock:
                wire.requests.append((self.command, self.path))
            if wire.fail(self.command, self.path):
                with wire.lock:
                    wire.faults += 1
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(FAULT_BODY)))
                self.end_headers()
                self.wfile.write(FAULT_BODY)
                return
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            self.send_response(answer.status)
            head = self.command == "HEAD"  # keeps the object's length, sends no body
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            length = answer.getheader("Content-Length", "0") if head else str(len(data))
            self.send_header("Content-Length", length)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def moto_s3() -> Iterator[tuple[str, Wire]]:
    """Start moto's S3 server and the proxy on 127.0.0.1; yield (endpoint URL, wire)."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    moto_host, moto_port = moto.get_host_and_port()
    wire = Wire()
    proxy, url = start_proxy(f"http://{moto_host}:{moto_port}", wire)
    try:
        yield url, wire
    finally:
        proxy.shutdown()
        proxy.server_close()
        moto.stop()


@dataclass
class S3:
    url: str
    wire: Wire
    bucket: str
    env: dict[str, str]

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def fs(self) -> Any:
        return fsspec.filesystem("s3")

    def keys(self, prefix: str = "") -> list[str]:
        self.fs.invalidate_cache()
        found = self.fs.find(f"{self.bucket}/{prefix}")
        return [k.removeprefix(f"{self.bucket}/") for k in found]

    def read_parquet(self, key: str) -> pd.DataFrame:
        self.fs.invalidate_cache()
        with self.fs.open(f"{self.bucket}/{key}", "rb") as handle:
            return pq.read_table(handle).to_pandas()

    def put_frame(self, frame: pd.DataFrame, key: str) -> str:
        with self.fs.open(f"{self.bucket}/{key}", "wb") as handle:
            frame.to_parquet(handle)
        return self.uri(key)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[tuple[str, Wire]]:
    yield from moto_s3()


@pytest.fixture
def s3(s3_endpoint: tuple[str, Wire], monkeypatch: pytest.MonkeyPatch) -> S3:
    url, wire = s3_endpoint
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"flameup-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(bucket)
    wire.reset()
    return S3(url, wire, bucket, env)
