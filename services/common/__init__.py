"""The small base the media code and the pipeline both stand on: settings, error classes,
logs, fault injection, gunicorn's settings."""
