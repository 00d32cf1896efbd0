"""Settings of `python -m producer`."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from shared.settings import CommonSettings, Port


class ProducerSettings(CommonSettings):
    """Settings of `python -m producer`."""

    coinbase_ws_url: str = Field("wss://ws-feed.exchange.coinbase.com", pattern=r"^wss?://[^\s]+$")
    coinbase_api_key: SecretStr | None = None
    coinbase_api_secret: SecretStr | None = None
    coinbase_api_passphrase: SecretStr | None = None
    producer_metrics_port: Port = 9101
    # librdkafka's queue is the bounded buffer between the socket and the broker.
    producer_buffer_messages: int = Field(100_000, ge=100, le=10_000_000)
    # librdkafka sends one request per partition per batch, so at live rates the linger sets
    # the request rate. At 900 ticks/s 15 ms against 5 ms halved the broker's CPU and cut the
    # producer's by a sixth, for ~7 ms more latency (the consumer needs ~25 ms of the 50).
    producer_linger_ms: int = Field(15, ge=0, le=1000)
    producer_delivery_timeout_ms: int = Field(300_000, ge=1000)
    feed_stale_after_s: float = Field(5.0, gt=0)  # five missed one-second heartbeats
    reconnect_min_s: float = Field(0.25, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    flush_timeout_s: float = Field(10.0, ge=0)
    # /healthz answers 503 once ticks have waited this long without an acknowledgement.
    health_stall_s: float = Field(30.0, gt=0)
    # Hot-hot: redundant sessions; the first arrival of each tick is published.
    feed_connections: int = Field(2, ge=1, le=4)
    # Largest WebSocket message read; a bigger one makes websockets close the connection
    # (1009). Generous: a valid ticker with a large extra field must not cost the session.
    feed_max_frame_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)

    @field_validator("kafka_trades_topic")
    @classmethod
    def _own_trades_topic(cls, value: str, info: ValidationInfo) -> str:
        # Trades on the ticker or dead-letter topic would be read there as bad ticks.
        if value and value in (info.data.get("kafka_topic"), info.data.get("kafka_dlq_topic")):
            raise ValueError("must differ from KAFKA_TOPIC and KAFKA_DLQ_TOPIC")
        return value
