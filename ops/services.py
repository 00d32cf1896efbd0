"""Make a Kafka broker and a MySQL-compatible server available on loopback.

    python ops/services.py up [--private] | down | status | schema
    python ops/services.py start kafka|mariadb | stop kafka|mariadb

`up` picks the first way that works:
1. both already answer at KAFKA_BOOTSTRAP_SERVERS / MYSQL_HOST:MYSQL_PORT: use them;
2. a Docker engine answers: `docker compose up -d` of the broker and MySQL services;
3. otherwise a real Apache Kafka broker (KRaft, jars from Maven Central, run with java)
   and a private MariaDB (Debian's mariadb-server, installed when missing and root),
   both living under .run/ (a folder per port) with their logs and PID files.
`up --private` takes the third way only: a broker and a database this checkout may stop
(the tests that stop them run on such a pair of their own, on other ports).
`down` stops exactly the processes `up` started here, by PID file.

One module a part: ops/kafka_broker.py (readiness, topics, the private broker),
ops/mysql_server.py (admin account, readiness, schema), ops/mariadb.py (the private
server), ops/compose.py, ops/processes.py (PID files, waiting until ready).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":  # `python ops/services.py`: import from the repository, not ops/
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from ops import compose, kafka_broker, mariadb, mysql_server
from ops.processes import say


def up(private: bool = False) -> None:
    if private:
        kafka_broker.start()
        mariadb.start()
    elif kafka_broker.ready() and mysql_server.ready():
        say("Kafka and MySQL already answer at the configured addresses; using them")
    elif not local_services_started() and compose.engine():
        compose.up()
    else:
        if not kafka_broker.ready():
            kafka_broker.start()
        if not mysql_server.ready():
            mariadb.start()
    mysql_server.apply_schema()
    kafka_broker.ensure_topics()


def local_pids() -> dict[str, int]:
    """PIDs of the services started here that still run, by name ("kafka", "mariadb")."""
    found = {"kafka": kafka_broker.running(), "mariadb": mariadb.running()}
    return {name: pid for name, pid in found.items() if pid is not None}


def local_services_started() -> bool:
    return bool(local_pids())


def down() -> None:
    kafka_broker.stop()
    mariadb.stop()


def status() -> int:
    kafka, mysql = kafka_broker.ready(), mysql_server.ready()
    say(
        f"Kafka {kafka_broker.BOOTSTRAP}: {'ready' if kafka else 'down'}; "
        f"MySQL {mysql_server.HOST}:{mysql_server.PORT}: {'ready' if mysql else 'down'}"
    )
    say(f"started here: {'yes' if local_services_started() else 'no'}")
    return 0 if kafka and mysql else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "schema", "start", "stop"])
    parser.add_argument("service", nargs="?", choices=["kafka", "mariadb"])
    parser.add_argument(
        "--private", action="store_true", help="up: start a private broker and MariaDB here"
    )
    args = parser.parse_args()
    if args.command in ("start", "stop") and args.service is None:
        parser.error(f"{args.command} needs a service: kafka or mariadb")
    match args.command, args.service:
        case "up", _:
            up(args.private)
        case "down", _:
            down()
        case "status", _:
            return status()
        case "schema", _:
            mysql_server.apply_schema()
        case "start", "kafka":
            kafka_broker.start()
        case "start", "mariadb":
            mariadb.start()
        case "stop", "kafka":
            kafka_broker.stop()
        case "stop", "mariadb":
            mariadb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
