"""Plain clients for the external feeds (SAP OData, weather, diesel, FX, ...): no Dagster here.

Assets in `defs/` are thin glue around these clients, so each client can be used and tested on
its own, against a loopback server or the bundled sample files.
"""
