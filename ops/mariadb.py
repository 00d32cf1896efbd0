"""A private MariaDB server in .run/mariadb-PORT, listening on 127.0.0.1:MYSQL_PORT: Debian's
mariadb-server (installed when missing and root), its data folder initialised once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pymysql

from ops import mysql_server
from ops.processes import RUN, port_open, running_pid, say, spawn, stop_pid_file, wait_until

FOLDER = RUN / f"mariadb-{mysql_server.PORT}"
MARKER = "mariadbd"


def running() -> int | None:
    """The PID of the private server started here, if it runs."""
    return running_pid(FOLDER / "pid", MARKER)


def stop() -> None:
    stop_pid_file(FOLDER, MARKER, "MariaDB")


def binary() -> str:
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


def unix_socket() -> Path:
    return FOLDER / "mysqld.sock"


def start() -> None:
    """Start the private server unless it runs, and wait until the admin account answers."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    data = FOLDER / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    pid = running()
    if pid is None and port_open(f"{mysql_server.HOST}:{mysql_server.PORT}"):
        # Another checkout's server: "started" would then be a lie a drill believes.
        raise SystemExit(
            f"cannot start MariaDB: {mysql_server.HOST}:{mysql_server.PORT} is served by a "
            "process not started here"
        )
    if pid is None:
        server = binary()
        # Its own tmpdir: a MariaDB starting deletes every #sql* file in its tmpdir, which in a
        # shared /tmp includes the temporary tables of another instance being initialised.
        tmpdir = FOLDER / "tmp"
        tmpdir.mkdir(exist_ok=True)
        if not (FOLDER / "initialized").exists():
            shutil.rmtree(data, ignore_errors=True)
            initialised = subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    *user,
                    f"--datadir={data}",
                    f"--tmpdir={tmpdir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if initialised.returncode != 0:
                print(initialised.stderr[-4000:], end="", flush=True)
                sys.exit(f"[services] mariadb-install-db failed for {data} (its output above)")
            (FOLDER / "initialized").write_text("yes")
        pid = spawn(
            [
                server,
                "--no-defaults",
                *user,
                f"--datadir={data}",
                f"--tmpdir={tmpdir}",
                f"--socket={unix_socket()}",
                f"--port={mysql_server.PORT}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                f"--log-error={FOLDER / 'mariadb.log'}",
                f"--pid-file={FOLDER / 'mariadbd.pid'}",
                "--innodb-buffer-pool-size=256M",
                "--max-connections=500",
                "--local-infile=1",
            ],
            FOLDER,
            "stdout.log",
        )
        say(f"started MariaDB {version(server)}, pid {pid}, log {FOLDER}")
    wait_until(socket_ready, "MariaDB", FOLDER / "mariadb.log", pid)
    allow_loopback_root()
    wait_until(mysql_server.ready, "MariaDB over TCP", FOLDER / "mariadb.log", pid)
    say(f"MariaDB ready at {mysql_server.HOST}:{mysql_server.PORT}")


def version(server: str) -> str:
    return subprocess.run([server, "--version"], capture_output=True, text=True).stdout.strip()


def socket_ready() -> bool:
    try:
        pymysql.connect(unix_socket=str(unix_socket()), user="root", connect_timeout=2).close()
    except pymysql.MySQLError:
        return False
    return True


def allow_loopback_root() -> None:
    """The private instance's root may log in over TCP from 127.0.0.1 (it listens nowhere else)."""
    connection = pymysql.connect(unix_socket=str(unix_socket()), user="root")
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
        cursor.execute("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
