"""Apache Kafka 4 (KRaft, single node) run with the JDK from broker jars fetched once from Maven Central."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from string import Template

from plantwatch.resources import package_path
from plantwatch.stack.service import Service, StackError

HERE = package_path("plantwatch.stack")
MIN_JAVA = 17


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise StackError(f"could not read the Java version from `{java} -version`:\n{out}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8" style


class Kafka(Service):
    name = "kafka"

    @property
    def ports(self) -> dict[str, int]:
        return {"broker": self.settings.kafka.port, "controller": self.settings.kafka.controller_port}

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def jars_dir(self) -> Path:
        return self.settings.state_dir / "cache" / f"kafka-{self.settings.kafka.version}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def java(self) -> str:
        java = shutil.which("java")
        if not java:
            raise StackError(
                "No JDK found: Kafka 4 needs Java 17 or newer. Install one (Debian: `apt-get install "
                "openjdk-17-jre-headless`) or run the Docker path (`make kafka-up` with a Docker engine)."
            )
        if (major := java_major_version(java)) < MIN_JAVA:
            raise StackError(f"Kafka 4 needs Java {MIN_JAVA}+, `java` is {major}: put a newer JDK first on PATH.")
        return java

    def fetch_jars(self) -> None:
        """Copy the broker's jars from Maven Central into the cache (once per Kafka version)."""
        done = self.jars_dir / ".complete"
        if done.exists():
            return
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(
                "Maven (`mvn`) is needed once to fetch the Kafka broker jars from Maven Central. "
                "Install it (Debian: `apt-get install maven`) or use the Docker path."
            )
        self.jars_dir.mkdir(parents=True, exist_ok=True)
        pom = self.jars_dir / "pom.xml"
        shutil.copy(HERE / "kafka-pom.xml", pom)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), f"-Dkafka.version={self.settings.kafka.version}",
             "dependency:copy-dependencies", f"-DoutputDirectory={self.jars_dir}", "-DincludeScope=runtime"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise StackError(
                f"Maven could not fetch the Kafka {self.settings.kafka.version} jars (is Maven Central reachable? "
                f"is the version right?):\n{tail}"
            )
        done.touch()

    def render_config(self) -> Path:
        kafka = self.settings.kafka
        text = Template((HERE / "kafka-server.properties").read_text()).substitute(
            host=kafka.host,
            port=kafka.port,
            controller_port=kafka.controller_port,
            data_dir=self.data_dir,
            partitions=kafka.partitions,
        )
        config = self.home / "server.properties"
        config.write_text(text)
        return config

    def cluster_id(self) -> str:
        """A new KRaft cluster id (a node of a cluster shares one with the others)."""
        cluster_id = "-"
        while cluster_id.startswith("-"):  # one id in 64 starts with '-': the tool would read it as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        return cluster_id

    def prepare(self) -> None:
        java = self.java()
        self.fetch_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.render_config()
        if not (self.data_dir / "meta.properties").exists():
            result = subprocess.run(
                [java, "-cp", f"{self.jars_dir}/*", "kafka.tools.StorageTool", "format",
                 "-t", self.cluster_id(), "-c", str(config)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(f"formatting Kafka storage of {self.name} failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        heap = self.settings.kafka.heap
        return [
            self.java(), f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
            "-cp", f"{self.jars_dir}/*", "kafka.Kafka", str(self.home / "server.properties"),
        ]  # fmt: skip

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({**self.settings.kafka.client_config(), "log_level": 0})
        try:
            admin.list_topics(timeout=1.5)
            return True
        except Exception:
            return False
