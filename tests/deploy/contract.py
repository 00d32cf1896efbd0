"""What the deployment files must agree with: settings, secrets, and the files they share.

Variables in `../shared/design.md` that the settings classes on this branch may not have yet
(the branches adding them merge separately) are accepted by name until they do; a variable
the settings class knows is always validated by it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from analysis.settings import AnalysisSettings
from consumer.settings import ConsumerSettings
from producer.settings import ProducerSettings
from repair.settings import RepairSettings
from shared.settings import CommonSettings, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]

SETTINGS: dict[str, type[ServiceSettings]] = {
    "topics": CommonSettings,
    "producer": ProducerSettings,
    "consumer": ConsumerSettings,
    "backfill": ConsumerSettings,
    "analysis": AnalysisSettings,
    "repair": RepairSettings,
}
CONTRACT_VARIABLES: dict[str, set[str]] = {
    "consumer": {"CONSUMER_PRODUCTS", "MYSQL_BULK_LOAD"},
    "backfill": {"MYSQL_BULK_LOAD"},
}
SECRET_NAMES = {
    "MYSQL_PASSWORD",
    "COINBASE_API_KEY",
    "COINBASE_API_SECRET",
    "COINBASE_API_PASSPHRASE",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
}


def settings_fields(settings_class: type[ServiceSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def check_settings(service: str, values: dict[str, str]) -> None:
    """The values are real variables of `service` and pass its settings' validation."""
    settings_class = SETTINGS[service]
    known = settings_fields(settings_class)
    pending = CONTRACT_VARIABLES.get(service, set()) - known
    unknown = set(values) - known - pending
    assert not unknown, f"not settings of {service}: {sorted(unknown)}"
    # model_validate, not the constructor: only these values, nothing from the environment.
    settings_class.model_validate(
        {name.lower(): value for name, value in values.items() if name not in pending}
    )


@functools.cache
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def dockerfile_targets() -> set[str]:
    return set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile(), re.MULTILINE))


@functools.cache
def dotenv_names() -> tuple[str, ...]:
    """Every variable .env.example names, set or commented out."""
    text = (ROOT / ".env.example").read_text()
    return tuple(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def compose_service(name: str) -> dict[str, Any]:
    service = compose()["services"][name]
    assert isinstance(service, dict)
    return service
