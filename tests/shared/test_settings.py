"""Each service's settings hold what it reads: a bad variable of another service stops nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.settings import AnalysisSettings
from consumer.settings import ConsumerSettings
from producer.settings import ProducerSettings
from shared.failures import CannotStart
from shared.settings import (
    CommonSettings,
    KafkaSettings,
    MySQLSettings,
    ProductSettings,
    ServiceSettings,
    describe,
    load,
)


def names(settings_class: type[ServiceSettings]) -> set[str]:
    return set(settings_class.model_fields)


@pytest.fixture(autouse=True)
def no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout


def test_each_service_composes_the_parts_it_reads() -> None:
    logging = names(ServiceSettings)  # in every part
    kafka, products = names(KafkaSettings) - logging, names(ProductSettings) - logging
    mysql = names(MySQLSettings) - logging
    assert names(CommonSettings) == logging | kafka | products
    assert kafka | products <= names(ProducerSettings)
    assert not mysql & names(ProducerSettings)
    assert kafka | products | mysql <= names(ConsumerSettings)
    assert mysql <= names(AnalysisSettings)
    assert not (kafka | products) & names(AnalysisSettings)


@pytest.mark.parametrize(
    ("variable", "value", "refused_by", "ignored_by"),
    [
        ("PRODUCTS", "not-a-product", (ProducerSettings, ConsumerSettings), (AnalysisSettings,)),
        ("KAFKA_TOPIC", "no topic", (ProducerSettings, ConsumerSettings), (AnalysisSettings,)),
        ("MYSQL_PORT", "eighty", (ConsumerSettings, AnalysisSettings), (ProducerSettings,)),
        ("LOG_LEVEL", "LOUD", (ProducerSettings, ConsumerSettings, AnalysisSettings), ()),
    ],
)
def test_a_bad_variable_stops_only_the_services_that_read_it(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    refused_by: tuple[type[ServiceSettings], ...],
    ignored_by: tuple[type[ServiceSettings], ...],
) -> None:
    monkeypatch.setenv(variable, value)
    for settings_class in refused_by:
        with pytest.raises(CannotStart, match=f"invalid setting {variable}:"):
            load(settings_class)
    for settings_class in ignored_by:
        load(settings_class)
        assert variable not in describe(settings_class)


def test_help_lists_the_variables_of_the_parts() -> None:
    analysis = describe(AnalysisSettings)
    assert "MYSQL_HOST" in analysis and "LOG_LEVEL" in analysis
    assert "KAFKA_" not in analysis and "PRODUCTS" not in analysis
    consumer = describe(ConsumerSettings)
    for variable in ("PRODUCTS", "KAFKA_TOPIC", "MYSQL_HOST", "MYSQL_BULK_LOAD", "LOG_FORMAT"):
        assert variable in consumer
