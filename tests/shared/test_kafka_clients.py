"""librdkafka's own log lines: structured, and written only while the client is polled."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson

from ops.pipeline import ROOT, free_port, python_env

# A producer whose broker is not there: librdkafka fails to connect again and again.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from shared.kafka_clients import reliable_producer
    from shared.logs import configure_logging
    from shared.settings import CommonSettings

    configure_logging("json", "INFO")
    producer = reliable_producer(CommonSettings())
    producer.produce("t", b"x")
    producer.poll(2)  # its lines are written here
    print("LAST", file=sys.stderr, flush=True)
    time.sleep(2)  # and not here, though it keeps failing to connect
    """
)


def test_librdkafka_lines_are_structured_and_none_comes_unpolled() -> None:
    env = python_env({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    before, last, after = done.stderr.partition("LAST\n")
    assert last and after == "", done.stderr
    lines = [orjson.loads(line) for line in before.splitlines()]
    assert lines, "librdkafka said nothing about a broker it cannot reach"
    for line in lines:
        assert line["logger_name"] == "librdkafka" and line["level"] == "error", line
        assert line["facility"] == "FAIL" and line["client"].startswith("rdkafka#producer"), line
        assert "Connection refused" in line["event"], line
