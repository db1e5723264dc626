"""Economic indicators (World Bank CPI, manually keyed PMI and road freight): client, parsing, Pandera schema and bundled samples."""
