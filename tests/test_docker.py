"""docker/: the compose files validate (no docker engine runs here, so nothing is started)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def _compose() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no compose client: apt-get install docker-compose (make sysdeps does)")


@pytest.mark.parametrize("name", ["compose.yml", "compose.opensearch.yml"])
def test_compose_config_validates(name):
    proc = subprocess.run([*_compose(), "-f", str(DOCKER / name), "config"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    services = config["services"]
    assert {"elasticsearch", "kibana", "redis", "setup", "worker", "service"} <= set(services)
    assert all("healthcheck" in services[s] for s in ("elasticsearch", "kibana", "redis"))
    assert services["service"]["environment"]["POLYSEEK_BROKER_URL"].startswith("redis://")


def test_dockerfile_runs_as_non_root_and_is_multi_stage():
    text = (DOCKER / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2 and "USER polyseek" in text and "HEALTHCHECK" in text


def test_runtime_stage_installs_the_wheel_and_checks_the_health_route():
    """The image runs what the wheel carries (es_templates included; tests/test_package.py installs that
    wheel) and its HEALTHCHECK asks the unauthenticated health route, not an engine endpoint."""
    runtime = (DOCKER / "Dockerfile").read_text().split("\nFROM ")[-1]
    copies = [line for line in runtime.splitlines() if line.startswith("COPY ")]
    assert copies and all("--from=build" in line for line in copies)
    assert "pip install --no-cache-dir /wheels/*.whl" in runtime
    (healthcheck,) = [line for line in runtime.splitlines() if line.startswith("HEALTHCHECK")]
    assert "/_polyseek/health" in healthcheck
