"""Assemble a runnable OpenSearch home from artifacts on Maven Central.

Maven Central carries OpenSearch's ``integ-test-zip`` distribution (server,
launcher scripts and the netty transport only) and the other core modules as plain
jars.  This module resolves them with ``mvn dependency:copy`` into a cache folder
outside the repository and lays them out as modules with the plugin descriptors the
official distribution generates at build time.  The k-NN plugin is published as a
real plugin zip and is unpacked as it is.

The k-NN zip on Maven Central carries no JNI libraries, so the ``faiss`` and
``nmslib`` engines are unavailable; the ``lucene`` HNSW engine (pure Java) is
what the index templates use.
"""

from __future__ import annotations

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
    """The module set Polyseek needs from OpenSearch ``version`` (2.x)."""
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
