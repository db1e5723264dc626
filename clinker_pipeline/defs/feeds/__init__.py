"""External feeds (weather, diesel, FX, indicators, market prices) as assets."""
