"""Diesel prices (EIA): client, parsing, Pandera schema and bundled samples."""
