"""Oracle capacity: the client and its bundled sample payload."""
