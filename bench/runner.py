"""Run the query service and an ingest worker from Python, in a checkout: the demo, eval, benchmarks and tests.

Not part of the product (the wheel ships no ``bench``): deployments run ``polyseek serve`` and
``polyseek worker``; this starts the same two from a test or a benchmark and stops them again.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a process, in MB; NaN when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_thread(settings: Settings, port: int | None = None) -> tuple[str, Callable[[], None]]:
    """Start the service in a daemon thread; returns its URL and a function that stops it."""
    import uvicorn

    from service.app import create_app

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("query service did not start")

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


class WorkerProcess:
    """A real Celery worker process (solo pool) that can be killed and restarted."""

    def __init__(self, log: Path, concurrency: int = 1, env: dict[str, str] | None = None):
        self.proc: subprocess.Popen | None = None
        self.log = log
        self.concurrency = concurrency
        self.env = env

    def start(self, timeout_s: float = 90.0) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "polyseek", "worker", "--loglevel", "info",
             "--concurrency", str(self.concurrency)],
            cwd=ROOT, stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.log.open(errors="replace") as fh:
                fh.seek(offset)
                if "ready." in fh.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError("worker did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the worker so far (main process; the solo pool runs tasks in it)."""
        return peak_rss_mb(self.proc.pid) if self.proc and self.proc.poll() is None else float("nan")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
