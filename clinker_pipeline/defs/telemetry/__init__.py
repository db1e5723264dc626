"""Plant and fleet telemetry over MQTT: topic scheme, message checks, the landing store, the
ingestor and the simulator (plain Python), the typing and threshold rules, and the assets that
load landed batches.

Nothing is imported here, so `clinker --help` does not pay for pandas or DuckDB.
"""
