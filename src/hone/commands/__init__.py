"""One module per CLI command (or group); each exposes `register(app)` and holds no stage logic."""
