"""Weather forecasts (OpenWeatherMap): client, parsing, Pandera schema and bundled samples."""
