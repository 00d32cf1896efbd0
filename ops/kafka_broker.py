"""The Kafka broker at KAFKA_BOOTSTRAP_SERVERS: whether it answers, the pipeline's topics, and
a private Apache Kafka broker (KRaft, jars from Maven Central, run with java) in
.run/kafka-PORT (one folder per port, so two private brokers may run side by side)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from ops.processes import ROOT, RUN, port_open, running_pid, say, spawn, stop_pid_file, wait_until

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "localhost:9092"
VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "coinbase-pipeline"
    / f"kafka-{VERSION}"
)
FIRST_ADDRESS = BOOTSTRAP.split(",")[0]  # the one a private broker listens on
PORT = FIRST_ADDRESS.rpartition(":")[2]
FOLDER = RUN / f"kafka-{PORT}"
MARKER = "kafka.Kafka"

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId><version>{LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""

LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
"""


def ready(timeout_s: float = 3.0) -> bool:
    """A metadata request answered, not merely an open port."""
    if not port_open(FIRST_ADDRESS):
        return False
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return True


def ensure_topics() -> None:
    subprocess.run([sys.executable, "-m", "shared.topics", "ensure"], check=True, cwd=ROOT)


def running() -> int | None:
    """The PID of the private broker started here, if it runs."""
    return running_pid(FOLDER / "pid", MARKER)


def stop() -> None:
    stop_pid_file(FOLDER, MARKER, "Kafka")


def jars() -> Path:
    """Kafka's broker jars, resolved once with Maven and cached outside the work tree."""
    lib = CACHE / "lib"
    if (CACHE / "complete").exists():
        return lib
    say(f"resolving Apache Kafka {VERSION} broker jars with Maven into {CACHE}")
    CACHE.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(lib, ignore_errors=True)
    (CACHE / "pom.xml").write_text(POM)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(CACHE / "pom.xml"),
            DEPENDENCY_PLUGIN,
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    (CACHE / "complete").write_text(VERSION)
    return lib


def properties(data: Path) -> str:
    port, controller_port = PORT, int(PORT) + 1
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
auto.create.topics.enable=false
"""


def start() -> None:
    """Start the private broker unless it runs, and wait until it answers."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    pid = running()
    if pid is None and port_open(FIRST_ADDRESS):
        # Another checkout's broker: "started" would then be a lie a drill believes.
        raise SystemExit(f"cannot start Kafka: {BOOTSTRAP} is served by a process not started here")
    if pid is None:
        lib = jars()
        classpath = f"{lib}/*"
        data = FOLDER / "data"
        server_properties = FOLDER / "server.properties"
        server_properties.write_text(properties(data))
        (FOLDER / "log4j2.properties").write_text(LOG4J.format(log=FOLDER / "server.log"))
        if not (FOLDER / "formatted").exists():
            # A format interrupted half-way leaves a folder the broker refuses: start over.
            shutil.rmtree(data, ignore_errors=True)
            subprocess.run(
                [
                    "java",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    str(uuid.uuid4()),
                    "-c",
                    str(server_properties),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (FOLDER / "formatted").write_text("yes")
        pid = spawn(
            [
                "java",
                "-Xms128m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError",
                f"-Dkafka.logs.dir={FOLDER}",
                f"-Dlog4j2.configurationFile={FOLDER / 'log4j2.properties'}",
                "-cp",
                classpath,
                MARKER,
                str(server_properties),
            ],
            FOLDER,
            "stdout.log",
        )
        say(f"started Apache Kafka {VERSION} broker (KRaft), pid {pid}, log {FOLDER}")
    wait_until(ready, "Kafka", FOLDER / "server.log", pid)
    say(f"Kafka ready at {BOOTSTRAP}")
