"""The embedded default stack: PostgreSQL, the Tansu broker and a Debezium feeder, on loopback."""
