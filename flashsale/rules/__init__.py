"""Pure business rules: no HTTP, no Kafka. Services, tests and notebooks call them."""
