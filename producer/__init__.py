"""Producer service: Coinbase WebSocket feed -> Kafka raw topic."""
