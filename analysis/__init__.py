"""Analysis service: a read-only HTTP API over `order`, shaped like Coinbase's market data."""
