"""The local cloud: official emulators, fake-gcs-server and the four services under gunicorn."""
