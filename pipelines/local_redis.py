"""Start and stop a local Redis on 127.0.0.1 for the Celery broker (tests, demo, dev).

Redis comes from Debian (``apt-get install redis-server``); production points
``POLYSEEK_BROKER_URL`` at its own Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from pipelines.settings import Settings


def redis_url(settings: Settings) -> str:
    return f"redis://127.0.0.1:{settings.redis_port}/0"


def _state_dir(settings: Settings) -> Path:
    path = settings.cache_dir / "redis"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ping(settings: Settings) -> bool:
    try:
        return bool(redis.Redis(port=settings.redis_port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def start(settings: Settings, timeout_s: float = 15.0) -> str:
    """Start redis-server (no-op if one answers) and return its URL."""
    if ping(settings):
        return redis_url(settings)
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found: apt-get install -y redis-server")
    state = _state_dir(settings)
    subprocess.run([binary, "--port", str(settings.redis_port), "--bind", "127.0.0.1",
                    "--daemonize", "yes", "--dir", str(state), "--pidfile", str(state / "redis.pid"),
                    "--logfile", str(state / "redis.log"), "--appendonly", "yes"], check=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ping(settings):
            return redis_url(settings)
        time.sleep(0.2)
    raise RuntimeError(f"redis did not answer on port {settings.redis_port}")


def stop(settings: Settings) -> bool:
    """Shut the local redis down; True if one was running."""
    if not ping(settings):
        return False
    try:
        redis.Redis(port=settings.redis_port).shutdown(nosave=False)
    except redis.ConnectionError:
        pass
    return True
