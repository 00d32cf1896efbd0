"""`make drill`: reliability drills on the whole pipeline, and what each one lost (must be nothing).

    .venv/bin/python -m drills [--only kill9,mariadb,broker,websocket,bad_frames,redundancy]
                               [--size 1.0] [--json out]

Each drill runs simulator -> producer -> Kafka -> consumer -> MariaDB on a throwaway
pipeline (ops/pipeline.py; services from ops/services.py, which the broker and database
drills stop and start), applies its fault, waits for the table to catch up, and compares
the table with every trade ticker that reached the producer, field by field (each row must
also name the record it came from); then it checks that the consumer committed its offsets
up to the topic's end and that both services exit 0 on SIGTERM:

- kill9: kill -9 the consumer 5 times during a backlog, restarting it each time;
- mariadb: restart MariaDB mid-stream (4 s after the first rows);
- broker: stop the Kafka broker for 30 s while the producer reads (5 s after the first rows);
- websocket: the simulator drops each connection every 3 s for a minute;
- bad_frames: malformed frames from the feed plus a corpus of bad records in the topic;
- redundancy: 100 msg/s per product for 30 s, one feed connection dropped every 2 s, with
  FEED_CONNECTIONS=1 and =2; prints the ticks the market made that never became a row
  (some with one connection, none with two).

The tests run the same drills smaller (tests/consumer/test_drills.py). --size scales counts
and durations.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from bench.report import print_table, write_json
from drills.core import DRILLS, Outcome, redundancy
from ops.pipeline import throwaway_pipeline


def run(key: str, size: float) -> list[Outcome]:
    if key == "redundancy":
        outcomes = []
        for connections in (1, 2):
            with throwaway_pipeline("drill") as pipeline:
                outcomes.append(redundancy(pipeline, connections, size))
        return outcomes
    with throwaway_pipeline("drill") as pipeline:
        return [DRILLS[key](pipeline, size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join([*DRILLS, "redundancy"]))
    parser.add_argument("--size", type=float, default=1.0, help="scale of counts and durations")
    parser.add_argument("--json", type=Path, default=Path("bench/results/drills.json"))
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    for key in args.only.split(","):
        print(f"[drill] {key} ...", flush=True)
        outcomes.extend(run(key, args.size))
    print_table(
        "drill: ticks made / reached the producer / rows / missing+extra / duplicates / "
        "dead letters / caught up after / wrong rows, offsets behind, unclean exits",
        [
            (
                o.drill,
                f"{o.ticks_generated} / {o.ticks_delivered} / {o.rows_found} / "
                f"{o.missing + o.unexpected} / {o.duplicates} / {o.dead_letters} / "
                f"{o.recovery_s} s / {o.wrong_rows}, {o.offsets_behind}, {o.unclean_exits}",
            )
            for o in outcomes
        ],
    )
    redundant = [o for o in outcomes if o.drill.startswith("FEED_CONNECTIONS")]
    if redundant:
        print_table(
            "redundancy: ticks the market made that never became a row",
            [(o.drill, f"{o.missed_by_feed} missing of {o.ticks_generated}") for o in redundant],
        )
    write_json(args.json, {"drills": [asdict(o) | {"lost": o.lost} for o in outcomes]})
    # What reached the producer must all be rows; with two connections, everything made.
    lost = sum(o.lost for o in outcomes)
    lost += sum(o.missed_by_feed for o in redundant if "CONNECTIONS=1," not in o.drill)
    other = sum(o.problems - o.lost for o in outcomes)
    print(f"\nlost or duplicated: {lost}; wrong rows, offsets behind or unclean exits: {other}")
    return 1 if lost or other else 0


if __name__ == "__main__":
    sys.exit(main())
