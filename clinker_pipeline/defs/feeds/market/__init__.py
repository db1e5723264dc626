"""Cement market prices: client, parsing, Pandera schema and bundled samples."""
