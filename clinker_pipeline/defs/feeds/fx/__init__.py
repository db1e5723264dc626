"""USD/INR exchange rates (Frankfurter): client, parsing, Pandera schema and bundled samples."""
