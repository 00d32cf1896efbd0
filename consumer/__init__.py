"""Consumer service: Kafka raw topic -> MySQL `order`, one pinned writer thread per product."""
