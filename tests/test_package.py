"""The polyseek wheel, installed into a fresh venv outside the repository, works there on its own.

The wheel is built from what the Dockerfile's build stage copies (so this is the image's wheel)
and installed with its runtime dependencies only: no extras, no torch. Then, with the working
directory outside the repository, the templates load from the installed package and
``polyseek serve`` starts without an engine and answers its health route without an API key.
Needs network access to PyPI or a warm pip cache (``PIP_CACHE_DIR``, which the Makefile sets).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from bench.runner import free_port
from pipelines.engine.templates import templates_for
from pipelines.kibana import saved_objects

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def build_inputs() -> list[str]:
    """The files and folders the Dockerfile's build stage copies from the context to build the wheel."""
    build_stage = DOCKERFILE.read_text().split("\nFROM ")[1]
    out = []
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            out += line.split()[1:-1]
    return out


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A venv with the wheel and its runtime dependencies, and the environment to run it outside the repo."""
    tmp = tmp_path_factory.mktemp("package")
    assert not tmp.is_relative_to(ROOT)
    src = tmp / "src"
    src.mkdir()
    for name in build_inputs():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", tmp / "dist", src])
    (wheel,) = (tmp / "dist").glob("polyseek-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    # --no-compile: byte-compiling every dependency was half the install time; imports compile what they use
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-compile", wheel])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLYSEEK_", "PYTHON"))}
    env["POLYSEEK_CACHE_DIR"] = str(tmp / "cache")
    return venv, env


def test_templates_load_from_the_installed_package(installed):
    venv, env = installed
    code = textwrap.dedent("""
        import importlib.util, json
        import es_templates
        from pipelines.engine.templates import templates_for
        from pipelines.kibana import saved_objects
        print(json.dumps({"package": es_templates.__file__, "saved_objects": len(saved_objects()),
                          "templates": {d: [t.name for t in templates_for(d)] for d in ("opensearch", "elasticsearch")},
                          "torch": importlib.util.find_spec("torch") is not None}))
    """)
    out = json.loads(_run([venv / "bin" / "python", "-c", code], cwd=venv.parent, env=env).stdout)
    assert Path(out["package"]).is_relative_to(venv)
    assert out["templates"] == {d: [t.name for t in templates_for(d)] for d in ("opensearch", "elasticsearch")}
    assert out["saved_objects"] == len(saved_objects()) > 0
    assert not out["torch"], "the runtime dependencies pull torch"


def test_serve_answers_health_without_engine_or_api_key(installed):
    venv, env = installed
    port = free_port()
    env = {**env, "POLYSEEK_ENGINE_URL": f"http://127.0.0.1:{free_port()}", "POLYSEEK_API_KEYS": '["s3cret"]'}
    log = (venv.parent / "serve.log").open("w")
    proc = subprocess.Popen([venv / "bin" / "polyseek", "serve", "--port", str(port)], cwd=venv.parent, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (venv.parent / "serve.log").read_text()
            try:
                resp = httpx.get(f"{url}/_polyseek/health", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "polyseek serve did not answer in 60 s"
                time.sleep(0.2)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"status": "up", "engine": {"reachable": False, "cluster_status": None}}
        assert httpx.get(f"{url}/_search", timeout=10).status_code == 401  # everything else still needs the key
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_wheel_ships_the_product_without_bench(installed):
    """The benchmarks stay in the checkout: the wheel has no ``bench``, and ``polyseek eval`` (a dev
    command) says it needs a source checkout instead of failing on an import."""
    venv, env = installed
    find = "import importlib.util as u; print([m for m in ('polyseek', 'service', 'bench') if u.find_spec(m)])"
    assert _run([venv / "bin" / "python", "-c", find], cwd=venv.parent, env=env).stdout.split() == [
        "['polyseek',", "'service']"]
    proc = subprocess.run([venv / "bin" / "polyseek", "eval", "--benchmark", "taxonomy-xling", "--small"],
                          cwd=venv.parent, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "needs a source checkout" in proc.stderr, proc.stderr


def test_the_product_imports_no_bench():
    """``polyseek`` (every command), the service and the worker's tasks import nothing from ``bench``."""
    code = ("import sys, polyseek.cli, service.app, pipelines.ingest.tasks; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bench', 'tests'}))")
    assert _run([sys.executable, "-c", code], cwd=ROOT).stdout.strip() == "[]"
