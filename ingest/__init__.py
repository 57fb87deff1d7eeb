"""ingest: MQTT telemetry in, validated, quarantined when bad, stored, handed to rules."""
