"""What each image must carry, read from the Dockerfile's inputs, and the probe that checks it.

Each Dockerfile target installs one hashed lock (requirements-<extra>.lock) and copies shared/
plus its own package. `expected()` says, from those files, which distributions an image must
hold (exactly its lock), which project packages it runs, and which it must lack; `PROBE` runs
inside the image and reports what is really there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("shared", "producer", "consumer", "analysis", "repair", "simulator")
# image (Dockerfile target) -> (its lock's extra, what it runs: every module of these must
# import, and with them whatever they use of shared/)
IMAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "producer": ("producer", ("producer",)),
    "consumer": ("consumer", ("consumer",)),
    "analysis": ("analysis", ("analysis",)),
    "repair": ("repair", ("repair",)),
    "base": ("tools", ("simulator", "shared.topics")),
}
# Installed into every venv by `python -m venv`, not by the lock.
VENV_SEEDS = {"pip", "setuptools"}


@dataclass(frozen=True)
class Expected:
    image: str
    distributions: frozenset[str]  # exactly these, besides pip (normalised names)
    runs: tuple[str, ...]  # project packages (or modules): every module of each must import
    modules: frozenset[str]  # every module of those packages in the source tree
    lacks_code: tuple[str, ...]  # project packages that must not be there
    lacks_modules: tuple[str, ...]  # top-level modules of the other images' distributions


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(extra: str, root: Path = ROOT) -> frozenset[str]:
    """The distributions pinned in requirements-<extra>.lock."""
    text = (root / f"requirements-{extra}.lock").read_text()
    return frozenset(normalise(name) for name in re.findall(r"^([A-Za-z0-9][^=\s]*)==", text, re.M))


# Distribution -> its importable top-level module, where that is not the name with "_".
MODULE_OF = {"python-dotenv": "dotenv", "opentelemetry-api": "opentelemetry", "pyyaml": "yaml"}


def source_modules(runs: tuple[str, ...], root: Path = ROOT) -> frozenset[str]:
    """The dotted names of every module under the packages in `runs`, in the source tree."""
    found: set[str] = set()
    for package in runs:
        folder = root / package.replace(".", "/")
        for path in folder.rglob("*.py") if folder.is_dir() else ():
            parts = path.relative_to(root).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return frozenset(found)


def expected(image: str, root: Path = ROOT) -> Expected:
    extra, runs = IMAGES[image]
    own = locked(extra, root)
    others = frozenset().union(*(locked(e, root) for e, _ in IMAGES.values())) - own
    return Expected(
        image=image,
        distributions=own,
        runs=runs,
        modules=source_modules(runs, root),
        lacks_code=tuple(
            p
            for p in PROJECT_PACKAGES
            if p != "shared" and p not in {r.split(".")[0] for r in runs}
        ),
        lacks_modules=tuple(sorted(MODULE_OF.get(d, d.replace("-", "_")) for d in others)),
    )


# Runs in the image as `python -c PROBE <json of Expected's lists>`: imports every module of
# the packages it runs (a missing COPY or dependency fails here), then reports what it finds.
PROBE = """
import importlib, importlib.metadata as md, importlib.util, json, pkgutil, re, sys
want = json.loads(sys.argv[1])
failed, modules = {}, []
for package in want["runs"]:
    try:
        path = getattr(importlib.import_module(package), "__path__", [])
    except Exception as error:
        failed[package] = repr(error)
        continue
    names = [m.name for m in pkgutil.walk_packages(path, package + ".")]
    modules += [package] + names if path else []
    for name in names:
        try:
            importlib.import_module(name)  # a __main__ runs nothing: main() is guarded
        except Exception as error:
            failed[name] = repr(error)
print(json.dumps({
    "failed": failed,
    "modules": modules,
    "distributions": sorted({re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
                             for d in md.distributions()}),
    "present": [m for m in want["lacks_code"] + want["lacks_modules"]
                if importlib.util.find_spec(m) is not None],
}))
"""


def probe_argument(want: Expected) -> str:
    return json.dumps(
        {"runs": want.runs, "lacks_code": want.lacks_code, "lacks_modules": want.lacks_modules}
    )


def problems(want: Expected, report: dict[str, Any]) -> list[str]:
    """What is wrong with an image, from PROBE's report; empty when it carries what it runs
    and nothing else."""
    image = want.image
    found = [f"{image}: import {name} fails: {error}" for name, error in report["failed"].items()]
    missing_code = sorted(want.modules - set(report["modules"]))
    if missing_code:
        found.append(f"{image}: modules not copied into the image: {missing_code}")
    distributions = set(report["distributions"]) - VENV_SEEDS
    if distributions != want.distributions:
        missing = sorted(want.distributions - distributions)
        extra = sorted(distributions - want.distributions)
        found.append(f"{image}: not its lock: missing {missing}, extra {extra}")
    found += [f"{image}: has {name}, which it does not run" for name in report["present"]]
    return found
