"""Typed settings read from the environment (and `.env`), in parts each service composes.

A service's settings hold what it reads and nothing else, so a variable it never reads is
never validated: the producer is `CommonSettings` (Kafka and the products), the consumer
`CommonSettings` and `MySQLSettings`, the analysis service `MySQLSettings`; each adds its
own (producer/settings.py, ...). Every part carries the logging settings of the base.

A bad value stops the service at start-up with one line naming the variable: see `load`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.failures import CannotStart

PRODUCT_ID = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")

Port = Annotated[int, Field(ge=0, le=65535)]


class ServiceSettings(BaseSettings):
    """What every service reads: how to log. The base of every part below."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ProductSettings(ServiceSettings):
    """The products; their list order gives the topic's partitions 0, 1, 2, ..."""

    products: Annotated[tuple[str, ...], NoDecode] = ("ETH-BTC", "BTC-USD", "BTC-EUR")

    @field_validator("products", mode="before")
    @classmethod
    def _split_products(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("products")
    @classmethod
    def _check_products(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one product is required")
        for product in value:
            if not PRODUCT_ID.match(product):
                raise ValueError(f"{product!r} is not a product id like BTC-USD")
        if len(set(value)) != len(value):
            raise ValueError("a product is listed twice; list order fixes partitions")
        return value


class KafkaSettings(ServiceSettings):
    """Where the broker is, how to log in, and the topics (shared/kafka_clients.py)."""

    kafka_bootstrap_servers: str = Field("localhost:9092", min_length=1)
    kafka_topic: str = Field("coinbase.ticker", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    kafka_dlq_topic: str = Field("coinbase.ticker.dlq", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    # The trade tape (every `match`); empty turns it off in every service.
    kafka_trades_topic: str = Field("coinbase.matches", pattern=r"^[A-Za-z0-9._-]{0,249}$")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # SCRAM for self-managed clusters and MSK's SCRAM auth; OAUTHBEARER for MSK IAM.
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None
    ) = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    # For topics the services create when missing (shared/topics.py).
    kafka_retention_ms: int = Field(-1, ge=-1)  # -1 keeps everything: the topic is the archive
    kafka_replication_factor: int = Field(-1, ge=-1)  # -1 takes the broker's default


class CommonSettings(KafkaSettings, ProductSettings):
    """What every service on the topic reads (producer, consumer, `shared.topics`)."""


class MySQLSettings(ServiceSettings):
    """Where MySQL is: the consumer and the analysis service; each names its own account."""

    mysql_host: str = "127.0.0.1"
    mysql_port: Port = 3306
    mysql_user: str = Field("ticker_writer", min_length=1)
    mysql_password: SecretStr = SecretStr("")
    mysql_database: str = Field("coinbase", pattern=r"^[A-Za-z0-9_]{1,64}$")
    mysql_ssl_ca: str | None = None

    def mysql_connect_args(self) -> dict[str, Any]:
        """Where and as whom to connect, as PyMySQL keywords; each service adds its options."""
        return {
            "host": self.mysql_host,
            "port": self.mysql_port,
            "user": self.mysql_user,
            "password": self.mysql_password.get_secret_value(),
            "database": self.mysql_database,
            "ssl": {"ca": self.mysql_ssl_ca} if self.mysql_ssl_ca else None,
        }


Settings = TypeVar("Settings", bound=ServiceSettings)


def describe(settings_class: type[ServiceSettings]) -> str:
    """The environment variables a service reads, with defaults: for `--help`."""
    lines = ["environment variables (a .env file is read too):"]
    for name, info in settings_class.model_fields.items():
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "unset" if default is None or isinstance(default, SecretStr) else default
        lines.append(f"  {name.upper():<32} default: {shown}")
    return "\n".join(lines)


def load(settings_class: type[Settings]) -> Settings:
    """Read settings, or raise CannotStart (exit 2) with one line naming the first bad one."""
    try:
        return settings_class()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise CannotStart(f"invalid setting {name}: {first['msg']}") from None
