"""What every benchmark shares: its command line, CPU and memory of processes, the simulator
and the services it feeds, metrics pages, percentiles, printing and saving."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from ops.http import wait_for_answer
from ops.pipeline import PRODUCTS, ROOT, Pipeline, free_port

Start = Callable[..., subprocess.Popen[bytes]]  # start(module, **env): a service, fed


def parser(doc: str | None, module: str) -> argparse.ArgumentParser:
    """A benchmark's command line, its docstring as --help."""
    raw = argparse.RawDescriptionHelpFormatter
    return argparse.ArgumentParser(f"python -m {module}", description=doc, formatter_class=raw)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process so far."""
    import psutil  # the bench extra only; `make drill` imports this module without it

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a running process so far (VmHWM, which psutil does not read)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Meter:
    """Wall-clock seconds, and CPU seconds of named processes, from its creation on."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.started = time.monotonic()

    def read(self) -> tuple[float, dict[str, float]]:
        """Seconds so far, and the CPU seconds each process used in them."""
        cpu = {name: cpu_seconds(pid) - self.cpu[name] for name, pid in self.pids.items()}
        return time.monotonic() - self.started, cpu


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
        process.wait(30)


@contextlib.contextmanager
def simulated_feed(
    pipeline: Pipeline, rate: float, count: int | None = None, **env: str
) -> Iterator[tuple[str, Start]]:
    """`python -m simulator` at `rate` ticks/s per product (`count` each, or endless; its own
    process, so it does not share this one's GIL): its URL, and `start`, which runs a service
    on `pipeline` fed by it with `env`. Everything is stopped at the end."""
    port = free_port()
    command = [sys.executable, "-m", "simulator", "--port", str(port), "--seed", "1"]
    command += ["--rate", str(rate), "--products", ",".join(PRODUCTS), "--log-level", "WARNING"]
    command += ["--count", str(count)] if count is not None else []
    started, url = [subprocess.Popen(command, cwd=ROOT)], f"ws://127.0.0.1:{port}"

    def start(module: str, **more: str) -> subprocess.Popen[bytes]:
        settings = {"COINBASE_WS_URL": url, "LOG_LEVEL": "WARNING"} | env | more
        started.append(pipeline.start(module, env=settings))
        return started[-1]

    try:
        wait_for_answer(f"http://127.0.0.1:{port}", timeout_s=10)
        yield url, start
    finally:
        stop(*reversed(started))


def metrics_text(port: int) -> str:
    """A service's /metrics page, waiting for its server to answer."""
    return wait_for_answer(f"http://127.0.0.1:{port}/metrics").decode()


def histogram_quantiles(
    text: str, name: str, quantiles: tuple[float, ...], baseline: str = "", labels: str = ""
) -> dict[str, float]:
    """Upper bucket bounds holding each quantile of a Prometheus histogram (summed over its
    series whose labels hold `labels`, e.g. 'table="order"'), observed since `baseline`."""

    def buckets(page: str) -> dict[float, float]:
        counts: dict[float, float] = {}
        for line in page.splitlines():
            if line.startswith(f"{name}_bucket") and labels in line:
                bound = float(line.split('le="')[1].split('"')[0])  # "+Inf" parses as inf
                counts[bound] = counts.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
        return counts

    before = buckets(baseline)
    found = sorted((b, c - before.get(b, 0.0)) for b, c in buckets(text).items())
    total = found[-1][1]
    result = {f"p{round(q * 100)}": next(b for b, c in found if c >= q * total) for q in quantiles}
    return result | {"samples": total}


def percentiles(values: list[float], wanted: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    ordered = sorted(values) or [float("nan")]
    return {f"p{p}": ordered[min(len(ordered) - 1, len(ordered) * p // 100)] for p in wanted}


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
