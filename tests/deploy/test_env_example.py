""".env.example: every variable once, each with a comment, values equal to the defaults."""

from __future__ import annotations

import re

from dotenv import dotenv_values

from analysis.settings import AnalysisSettings
from consumer.settings import ConsumerSettings
from producer.settings import ProducerSettings
from repair.settings import RepairSettings
from shared.settings import CommonSettings, ServiceSettings
from tests.deploy.contract import ROOT, dotenv_names, settings_fields

ALL_SETTINGS: tuple[type[ServiceSettings], ...] = (
    CommonSettings,
    ProducerSettings,
    ConsumerSettings,
    AnalysisSettings,
    RepairSettings,
)
# Variables read outside shared/settings.py: ops/mysql_server.py and the tests (admin account),
# docker-compose.yml, the Makefile.
OPS_VARIABLES = {
    "MYSQL_ADMIN_USER",
    "MYSQL_ADMIN_PASSWORD",
    "BIND_ADDRESS",
    "SIMULATOR_RATE",
    "GRAFANA_ADMIN_PASSWORD",
    "REGISTRY",
    "TAG",
}


def check_values(settings_class: type[ServiceSettings], values: dict[str, str]) -> None:
    settings_class.model_validate({name.lower(): value for name, value in values.items()})


def test_env_example_lists_every_variable_once() -> None:
    names = dotenv_names()
    assert len(names) == len(set(names)), "a variable is listed twice"
    every = set().union(*(settings_fields(cls) for cls in ALL_SETTINGS)) | OPS_VARIABLES
    assert set(names) == every


def test_env_example_lines_have_a_comment() -> None:
    variable = re.compile(r"^#? ?[A-Z][A-Z0-9_]*=")
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if variable.match(line):
            above = lines[index - 1]
            assert above.startswith("# ") and not variable.match(above), f"no comment: {line}"


def test_env_example_values_are_valid_defaults() -> None:
    values = {
        key: value
        for key, value in dotenv_values(ROOT / ".env.example").items()
        if value is not None
    }
    for settings_class in ALL_SETTINGS:
        fields = settings_fields(settings_class)
        check_values(settings_class, {k: v for k, v in values.items() if k in fields})
        # One file for every service: MYSQL_PASSWORD is schema.sql's local password, and
        # MYSQL_USER the writer's (the analysis service defaults to its reader account).
        readers = (AnalysisSettings, RepairSettings)
        own = {"MYSQL_USER"} if settings_class in readers else set()
        for key, value in values.items():
            if key in fields and key != "MYSQL_PASSWORD" and key not in own:
                # The declared default: instantiating would read this process's environment.
                default = settings_class.model_fields[key.lower()].default
                shown = ",".join(default) if isinstance(default, tuple) else str(default)
                assert value == shown, f"{key}={value}, default {shown}"
