"""`make drill`: reliability drills on the whole pipeline, and what each one lost (must be nothing).

    .venv/bin/python -m drills [--only kill9,mariadb,broker,websocket,bad_frames,
                                      revoked_grant,topic_deleted,redundancy]
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
- revoked_grant: the writer account loses INSERT mid-stream: the consumer must exit 1 within
  seconds; with the grant back and the consumer restarted, nothing is lost or duplicated;
- topic_deleted: the raw topic deleted mid-stream: both services exit 1 within seconds, and
  the producer accounts for every tick it read (acknowledged, or counted not delivered);
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
from drills.core import DRILLS, Drill, Outcome, redundancy
from drills.unfixable import TopicDeleted, revoked_grant, topic_deleted
from ops.pipeline import throwaway_pipeline

ROW_DRILLS: dict[str, Drill] = {**DRILLS, "revoked_grant": revoked_grant}


def run(key: str, size: float) -> list[Outcome]:
    if key == "redundancy":
        outcomes = []
        for connections in (1, 2):
            with throwaway_pipeline("drill") as pipeline:
                outcomes.append(redundancy(pipeline, connections, size))
        return outcomes
    with throwaway_pipeline("drill") as pipeline:
        return [ROW_DRILLS[key](pipeline, size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drills",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join([*ROW_DRILLS, "topic_deleted", "redundancy"]))
    parser.add_argument("--size", type=float, default=1.0, help="scale of counts and durations")
    parser.add_argument("--json", type=Path, default=Path("bench/results/drills.json"))
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    deleted: list[TopicDeleted] = []
    for key in args.only.split(","):
        print(f"[drill] {key} ...", flush=True)
        if key == "topic_deleted":
            with throwaway_pipeline("drill") as pipeline:
                deleted.append(topic_deleted(pipeline, args.size))
        else:
            outcomes.extend(run(key, args.size))
    if outcomes:
        print_table(
            "drill: ticks made / reached the producer / rows / missing+extra / duplicates / "
            "dead letters / caught up after / wrong rows, offsets behind, unclean exits",
            [
                (
                    f"{o.drill} ({o.note})" if o.note else o.drill,
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
    for d in deleted:
        print_table(
            "topic deleted mid-stream: exit code and seconds to it / ticks read = acknowledged "
            "+ counted not delivered + dropped (unaccounted) / 'Kafka did not take ticks' lines",
            [
                ("producer", f"{d.producer_exit} after {d.producer_s} s"),
                ("consumer", f"{d.consumer_exit} after {d.consumer_s} s"),
                (
                    "ticks",
                    f"{d.ticks_read} = {d.delivered} + {d.undelivered} + {d.dropped} "
                    f"({d.unaccounted})",
                ),
                ("error lines", str(d.error_lines)),
            ],
        )
    write_json(
        args.json,
        {
            "drills": [asdict(o) | {"lost": o.lost} for o in outcomes],
            "topic_deleted": [asdict(d) | {"unaccounted": d.unaccounted} for d in deleted],
        },
    )
    # What reached the producer must all be rows; with two connections, everything made.
    lost = sum(o.lost for o in outcomes)
    lost += sum(o.missed_by_feed for o in redundant if "CONNECTIONS=1," not in o.drill)
    other = sum(o.problems - o.lost for o in outcomes) + sum(d.problems for d in deleted)
    print(f"\nlost or duplicated: {lost}; wrong rows, offsets behind or unclean exits: {other}")
    return 1 if lost or other else 0


if __name__ == "__main__":
    sys.exit(main())
