"""`python -m consumer backfill` against the real broker and MariaDB: restores deleted rows
exactly, reports what it did, selects by record time, and leaves the live offsets alone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import Pipeline
from tests.consumer.harness import Feed, Service, assert_exact, subset, wait_until_exact
from tests.factories import committed, snapshot, ticker

PER_PRODUCT = 2000


@dataclass(frozen=True)
class SummaryLine:
    offsets: str | None  # "start..end"; None on the total line
    written: int
    duplicates: int
    dead_letters: int
    snapshots: int


def parse_summary(stdout: str, products: tuple[str, ...]) -> dict[str, SummaryLine]:
    """The backfill's table: one line per product and a `total` line."""
    found: dict[str, SummaryLine] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in products and len(parts) == 6:
            numbers = [int(part) for part in parts[2:]]
            found[parts[0]] = SummaryLine(parts[1], *numbers)
        elif parts and parts[0] == "total" and len(parts) == 5:
            found["total"] = SummaryLine(None, *[int(part) for part in parts[1:]])
    return found


def run_backfill(
    pipeline: Pipeline, logs: Path, *args: str
) -> tuple[Service, dict[str, SummaryLine]]:
    name = f"backfill{len(list(logs.glob('backfill*.stderr')))}"
    backfill = Service(pipeline, logs, name=name, args=("backfill", *args))
    backfill.start()
    code = backfill.wait(60)
    assert code == 0, f"backfill {args} exited {code}\n{backfill.stderr()}"
    summary = parse_summary(backfill.stdout(), pipeline.products)
    assert set(summary) == {*pipeline.products, "total"}, (
        f"no complete summary on stdout:\n{backfill.stdout()}\n{backfill.stderr()}"
    )
    return backfill, summary


@pytest.mark.timeout(90)
def test_backfill_restores_deleted_rows_and_leaves_live_offsets(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    eth, usd, eur = pipeline.products
    feed = Feed(pipeline)
    feed.send_no_rows([(0, snapshot(eth)), (0, snapshot(eth, 5))])
    feed.produce(PER_PRODUCT)
    feed.send_no_rows([(1, b"{not json"), (1, ticker(usd, 77, price="NaN"))])
    live = Service(pipeline, tmp_path)
    try:
        live.start()
        wait_until_exact(feed, live, 60)
        offsets_before = committed(pipeline)
        assert offsets_before == feed.offsets

        # Lose a sequence range of one product and every row of another.
        with pipeline.services.admin(pipeline.database) as admin, admin.cursor() as cursor:
            low, high = sorted(s for p, s in feed.expected if p == eth)[500:800:299]
            lost_range = cursor.execute(
                "DELETE FROM `order` WHERE product_id = %s AND sequence BETWEEN %s AND %s",
                (eth, low, high),
            )
            lost_all = cursor.execute("DELETE FROM `order` WHERE product_id = %s", (eur,))
        assert (lost_range, lost_all) == (300, PER_PRODUCT)

        backfill, summary = run_backfill(pipeline, tmp_path, "--since", "earliest")
        context = f"{backfill.stdout()}\n{backfill.stderr()}"
        assert summary[eth] == SummaryLine(f"0..{feed.offsets[0]}", 300, PER_PRODUCT - 300, 0, 2), (
            context
        )
        assert summary[usd] == SummaryLine(f"0..{feed.offsets[1]}", 0, PER_PRODUCT, 2, 0), context
        assert summary[eur] == SummaryLine(f"0..{feed.offsets[2]}", PER_PRODUCT, 0, 0, 0), context
        assert summary["total"] == SummaryLine(
            None, 300 + PER_PRODUCT, 2 * PER_PRODUCT - 300, 2, 2
        ), context
        assert_exact(feed, "after backfill")

        assert live.alive(), f"the live consumer died during the backfill\n{live.stderr()}"
        assert committed(pipeline) == offsets_before, "backfill moved the live group's offsets"
        assert all(offset < 0 for offset in committed(pipeline, f"{pipeline.group_id}.backfill")), (
            "backfill committed offsets of its own"
        )
        code, _took = live.terminate()
        assert code == 0, live.stderr()
        assert committed(pipeline) == offsets_before
    finally:
        live.stop_quietly()


def iso(moment: datetime, offset_hours: float) -> str:
    """`moment` written in another zone (the backfill must honour the offset)."""
    text = moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()
    return text.replace("+00:00", "Z")


@pytest.mark.timeout(90)
def test_backfill_since_and_until_select_by_record_time(pipeline: Pipeline, tmp_path: Path) -> None:
    feed = Feed(pipeline)
    first = feed.produce(300)
    time.sleep(1)
    t1 = datetime.now(UTC)
    time.sleep(1)
    second = feed.produce(200)
    time.sleep(1)
    t2 = datetime.now(UTC)
    time.sleep(1)
    third = feed.produce(100)
    ends = feed.offsets

    # Into an empty table: only the middle group, by a window given in two zones.
    _run, summary = run_backfill(pipeline, tmp_path, "--since", iso(t1, 0), "--until", iso(t2, 5.5))
    for product in pipeline.products:
        assert summary[product] == SummaryLine("300..500", 200, 0, 0, 0), summary
    assert_exact(feed, "--since t1 --until t2", subset(feed, second))

    # From t2 to the end (a time without offset is UTC).
    naive = t2.replace(tzinfo=None).isoformat()
    _run, summary = run_backfill(pipeline, tmp_path, "--since", naive)
    for partition, product in enumerate(pipeline.products):
        assert summary[product] == SummaryLine(f"500..{ends[partition]}", 100, 0, 0, 0), summary
    assert_exact(feed, "--since t2", subset(feed, second + third))

    # Everything again: the first group is new, the rest are duplicates.
    _run, summary = run_backfill(pipeline, tmp_path, "--since", "earliest")
    assert summary["total"] == SummaryLine(None, len(first), len(second + third), 0, 0), summary
    assert_exact(feed, "--since earliest")
    assert all(offset < 0 for offset in committed(pipeline)), "backfill used the live group"
