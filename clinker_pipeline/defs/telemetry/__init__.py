"""Plant and fleet telemetry (MQTT landing batches) as assets."""
