"""Stream apps (Quix Streams): the ingest that lands readings from Kafka in ClickHouse."""
