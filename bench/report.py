"""What every benchmark shares: its command line, processes (CPU, memory, start, stop), the
simulator, metrics pages, percentiles, printing and saving."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from ops import services
from ops.pipeline import PRODUCTS, ROOT, free_port


def parser(doc: str | None, module: str) -> argparse.ArgumentParser:
    """A benchmark's command line, its docstring as --help."""
    formatter = argparse.RawDescriptionHelpFormatter
    return argparse.ArgumentParser(
        f"python -m {module}", description=doc, formatter_class=formatter
    )


class Process:
    """CPU time and memory of a running process (psutil; peak RSS from /proc)."""

    def __init__(self, pid: int) -> None:
        # psutil comes with the bench extra only; `make drill` uses this module without it.
        import psutil

        self.pid = pid
        self._process = psutil.Process(pid)

    def cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(self._process.memory_info().rss) / 2**20

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def service_pid(name: str) -> int:
    """PID of the local broker ("kafka") or database ("mariadb") that ops/services.py runs."""
    folder, marker = {
        "kafka": (services.KAFKA_DIR, services.KAFKA_MARKER),
        "mariadb": (services.MARIADB_DIR, services.MARIADB_MARKER),
    }[name]
    pid = services.running_pid(folder / "pid", marker)
    if pid is None:
        raise SystemExit(f"{name} was not started by ops/services.py here: no PID to measure")
    return pid


def service_cpu() -> dict[str, float]:
    """CPU seconds so far of the local MariaDB and broker (none when not run here)."""
    import psutil

    found = {}
    for name in ("mariadb", "kafka"):
        with contextlib.suppress(SystemExit, psutil.Error):
            found[name] = Process(service_pid(name)).cpu_seconds()
    return found


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
        process.wait(30)


def get(url: str, timeout_s: float = 30) -> bytes:
    """The page at `url`, waiting for its server to answer (an HTTP error answers too)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as page:
                return bytes(page.read())
        except urllib.error.HTTPError as exc:
            return bytes(exc.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_simulator(rate: float, count: int | None) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m simulator` (its own process, so it does not share this one's GIL)."""
    port = free_port()
    command = [sys.executable, "-m", "simulator", "--port", str(port), "--seed", "1"]
    command += ["--rate", str(rate), "--products", ",".join(PRODUCTS), "--log-level", "WARNING"]
    if count is not None:
        command += ["--count", str(count)]
    process = subprocess.Popen(command, cwd=ROOT)
    get(f"http://127.0.0.1:{port}", timeout_s=10)
    return process, f"ws://127.0.0.1:{port}"


def metrics_text(port: int) -> str:
    """A service's /metrics page, waiting for its server to answer."""
    return get(f"http://127.0.0.1:{port}/metrics").decode()


def histogram_quantiles(
    text: str, name: str, quantiles: tuple[float, ...], baseline: str = ""
) -> dict[str, float]:
    """Upper bucket bounds holding each quantile of a Prometheus histogram (summed over its
    labels), of what was observed since `baseline`."""

    def buckets(page: str) -> dict[float, float]:
        counts: dict[float, float] = {}
        for line in page.splitlines():
            if line.startswith(f"{name}_bucket"):
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
