"""Make a Kafka broker and a MySQL-compatible server available on loopback.

    python ops/services.py up | down | status | schema
    python ops/services.py start kafka|mariadb | stop kafka|mariadb

`up` picks the first way that works:
1. both already answer at KAFKA_BOOTSTRAP_SERVERS / MYSQL_HOST:MYSQL_PORT: use them;
2. a Docker engine answers: `docker compose up -d` of the broker and MySQL services;
3. otherwise a real Apache Kafka broker (KRaft, jars from Maven Central, run with java)
   and a private MariaDB (Debian's mariadb-server, installed when missing and root),
   both living under .run/ with their logs and PID files.
`down` stops exactly the processes `up` started here, by PID file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
from confluent_kafka.admin import AdminClient
from pymysql.connections import Connection
from pymysql.cursors import Cursor

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "coinbase-pipeline"
    / f"kafka-{KAFKA_VERSION}"
)
READY_DEADLINE_S = 120.0


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


KAFKA_BOOTSTRAP = env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
MYSQL_HOST = env("MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(env("MYSQL_PORT", "3306"))
MYSQL_ADMIN_USER = env("MYSQL_ADMIN_USER", "root")
MYSQL_ADMIN_PASSWORD = os.environ.get("MYSQL_ADMIN_PASSWORD", "")


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)


# ---------------------------------------------------------------- readiness checks


def kafka_ready(timeout_s: float = 3.0) -> bool:
    """A metadata request answered, not merely an open port."""
    if not port_open(KAFKA_BOOTSTRAP.split(",")[0]):
        return False
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return True


def mysql_ready() -> bool:
    """A real query answered by the admin account."""
    try:
        connection = admin_connection(connect_timeout=2)
    except pymysql.MySQLError:
        return False
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def admin_connection(database: str | None = None, **options: Any) -> Connection[Cursor]:
    """The account that may apply the schema and create databases (MYSQL_ADMIN_*)."""
    return pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_ADMIN_USER,
        password=MYSQL_ADMIN_PASSWORD,
        database=database,
        **options,
    )


def port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=1):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], what: str, log: Path | None, pid: int | None) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not pid_alive(pid):
            break
        time.sleep(0.5)
    say(f"{what} did not become ready within {READY_DEADLINE_S:.0f} s")
    if log is not None and log.exists():
        say(f"last lines of {log}:")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), flush=True)
    sys.exit(1)


# ---------------------------------------------------------------- processes by PID file


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The PID in `pid_file` if that process is alive and is ours (cmdline has `marker`)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    if pid_alive(pid) and marker in cmdline:
        return pid
    return None


def spawn(command: list[str], folder: Path, log_name: str) -> int:
    log = (folder / log_name).open("ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
    )
    (folder / "pid").write_text(str(process.pid))
    return process.pid


def stop_pid_file(folder: Path, marker: str, what: str) -> None:
    pid = running_pid(folder / "pid", marker)
    if pid is None:
        (folder / "pid").unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        say(f"{what} (pid {pid}) ignored SIGTERM for 60 s, sending SIGKILL")
        os.kill(pid, signal.SIGKILL)
    (folder / "pid").unlink(missing_ok=True)
    say(f"stopped {what} (pid {pid})")


# ---------------------------------------------------------------- Kafka (KRaft, from jars)

KAFKA_DIR = RUN / "kafka"
KAFKA_MARKER = "kafka.Kafka"

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
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


def kafka_jars() -> Path:
    """Kafka's broker jars, resolved once with Maven and cached outside the work tree."""
    lib = CACHE / "lib"
    if (CACHE / "complete").exists():
        return lib
    say(f"resolving Apache Kafka {KAFKA_VERSION} broker jars with Maven into {CACHE}")
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
    (CACHE / "complete").write_text(KAFKA_VERSION)
    return lib


def kafka_properties(data: Path) -> str:
    host_port = KAFKA_BOOTSTRAP.split(",")[0]
    port = host_port.rpartition(":")[2]
    controller_port = int(port) + 1
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


def start_kafka() -> None:
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    pid = running_pid(KAFKA_DIR / "pid", KAFKA_MARKER)
    if pid is None:
        lib = kafka_jars()
        classpath = f"{lib}/*"
        data = KAFKA_DIR / "data"
        properties = KAFKA_DIR / "server.properties"
        properties.write_text(kafka_properties(data))
        (KAFKA_DIR / "log4j2.properties").write_text(LOG4J.format(log=KAFKA_DIR / "server.log"))
        if not (KAFKA_DIR / "formatted").exists():
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
                    str(properties),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (KAFKA_DIR / "formatted").write_text("yes")
        pid = spawn(
            [
                "java",
                "-Xms128m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError",
                f"-Dkafka.logs.dir={KAFKA_DIR}",
                f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
                "-cp",
                classpath,
                KAFKA_MARKER,
                str(properties),
            ],
            KAFKA_DIR,
            "stdout.log",
        )
        say(f"started Apache Kafka {KAFKA_VERSION} broker (KRaft), pid {pid}, log {KAFKA_DIR}")
    wait_until(kafka_ready, "Kafka", KAFKA_DIR / "server.log", pid)
    say(f"Kafka ready at {KAFKA_BOOTSTRAP}")


# ---------------------------------------------------------------- MariaDB (private instance)

MARIADB_DIR = RUN / "mariadb"
MARIADB_MARKER = "mariadbd"


def mariadb_binary() -> str:
    found = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("[services] mariadbd is missing; install mariadb-server (needs root)")
    say("installing Debian's mariadb-server")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "mariadb-server", "mariadb-client"],
        check=True,
        env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or "/usr/sbin/mariadbd"


def mariadb_socket() -> Path:
    return MARIADB_DIR / "mysqld.sock"


def start_mariadb() -> None:
    MARIADB_DIR.mkdir(parents=True, exist_ok=True)
    data = MARIADB_DIR / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    pid = running_pid(MARIADB_DIR / "pid", MARIADB_MARKER)
    if pid is None:
        binary = mariadb_binary()
        if not (MARIADB_DIR / "initialized").exists():
            shutil.rmtree(data, ignore_errors=True)
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    *user,
                    f"--datadir={data}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (MARIADB_DIR / "initialized").write_text("yes")
        pid = spawn(
            [
                binary,
                "--no-defaults",
                *user,
                f"--datadir={data}",
                f"--socket={mariadb_socket()}",
                f"--port={MYSQL_PORT}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                f"--log-error={MARIADB_DIR / 'mariadb.log'}",
                f"--pid-file={MARIADB_DIR / 'mariadbd.pid'}",
                "--innodb-buffer-pool-size=256M",
                "--max-connections=500",
                "--local-infile=1",
            ],
            MARIADB_DIR,
            "stdout.log",
        )
        say(f"started MariaDB {mariadb_version(binary)}, pid {pid}, log {MARIADB_DIR}")
    wait_until(socket_ready, "MariaDB", MARIADB_DIR / "mariadb.log", pid)
    allow_loopback_root()
    wait_until(mysql_ready, "MariaDB over TCP", MARIADB_DIR / "mariadb.log", pid)
    say(f"MariaDB ready at {MYSQL_HOST}:{MYSQL_PORT}")


def mariadb_version(binary: str) -> str:
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()


def socket_ready() -> bool:
    try:
        pymysql.connect(unix_socket=str(mariadb_socket()), user="root", connect_timeout=2).close()
    except pymysql.MySQLError:
        return False
    return True


def allow_loopback_root() -> None:
    """The private instance's root may log in over TCP from 127.0.0.1 (it listens nowhere else)."""
    connection = pymysql.connect(unix_socket=str(mariadb_socket()), user="root")
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
        cursor.execute("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")


# ---------------------------------------------------------------- schema and topics


def apply_schema() -> None:
    connection = admin_connection(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with connection, connection.cursor() as cursor:
        cursor.execute((ROOT / "schema.sql").read_text())
        while cursor.nextset():
            pass
    say("schema.sql applied")


def ensure_topics() -> None:
    subprocess.run([sys.executable, "-m", "shared.topics", "ensure"], check=True, cwd=ROOT)


# ---------------------------------------------------------------- commands


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def up() -> None:
    if kafka_ready() and mysql_ready():
        say("Kafka and MySQL already answer at the configured addresses; using them")
    elif not local_services_started() and docker_engine():
        say("Docker engine found: docker compose up -d redpanda mysql")
        subprocess.run(
            ["docker", "compose", "up", "-d", "--wait", "redpanda", "mysql"], check=True, cwd=ROOT
        )
        wait_until(kafka_ready, "Kafka (compose)", None, None)
        wait_until(mysql_ready, "MySQL (compose)", None, None)
    else:
        if not kafka_ready():
            start_kafka()
        if not mysql_ready():
            start_mariadb()
    apply_schema()
    ensure_topics()


def local_pids() -> dict[str, int]:
    """PIDs of the services started here that still run, by name ("kafka", "mariadb")."""
    found = {
        "kafka": running_pid(KAFKA_DIR / "pid", KAFKA_MARKER),
        "mariadb": running_pid(MARIADB_DIR / "pid", MARIADB_MARKER),
    }
    return {name: pid for name, pid in found.items() if pid is not None}


def local_services_started() -> bool:
    return bool(local_pids())


def down() -> None:
    stop_pid_file(KAFKA_DIR, KAFKA_MARKER, "Kafka")
    stop_pid_file(MARIADB_DIR, MARIADB_MARKER, "MariaDB")


def status() -> int:
    kafka, mysql = kafka_ready(), mysql_ready()
    say(
        f"Kafka {KAFKA_BOOTSTRAP}: {'ready' if kafka else 'down'}; "
        f"MySQL {MYSQL_HOST}:{MYSQL_PORT}: {'ready' if mysql else 'down'}"
    )
    say(f"started here: {'yes' if local_services_started() else 'no'}")
    return 0 if kafka and mysql else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "schema", "start", "stop"])
    parser.add_argument("service", nargs="?", choices=["kafka", "mariadb"])
    args = parser.parse_args()
    if args.command in ("start", "stop") and args.service is None:
        parser.error(f"{args.command} needs a service: kafka or mariadb")
    match args.command, args.service:
        case "up", _:
            up()
        case "down", _:
            down()
        case "status", _:
            return status()
        case "schema", _:
            apply_schema()
        case "start", "kafka":
            start_kafka()
        case "start", "mariadb":
            start_mariadb()
        case "stop", "kafka":
            stop_pid_file(KAFKA_DIR, KAFKA_MARKER, "Kafka")
        case "stop", "mariadb":
            stop_pid_file(MARIADB_DIR, MARIADB_MARKER, "MariaDB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
