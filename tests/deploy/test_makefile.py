"""The Makefile's image targets: one build per service image, push pushes all four (the ECS
stack runs each of them)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.deploy.contract import ROOT


def test_makefile_image_targets() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "build-producer",
            "build-consumer",
            "build-analysis",
            "build-repair",
            "push",
            "compose-config",
            "REGISTRY=registry.example/cp",
            "TAG=t1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "docker build --target producer -t registry.example/cp/producer:t1 .",
        "docker build --target consumer -t registry.example/cp/consumer:t1 .",
        "docker build --target analysis -t registry.example/cp/analysis:t1 .",
        "docker build --target repair -t registry.example/cp/repair:t1 .",
        "docker push registry.example/cp/producer:t1",
        "docker push registry.example/cp/consumer:t1",
        "docker push registry.example/cp/analysis:t1",
        "docker push registry.example/cp/repair:t1",
        "docker compose --profile demo --profile monitoring --profile per-instrument config -q",
    ]


def test_makefile_lints_the_stack() -> None:
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "cfn-lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [
        ".venv/bin/cfn-lint",
        "deploy/cloudformation/pipeline.yml",
    ]
