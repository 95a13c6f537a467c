"""Gunicorn settings from the declared settings (services/common/config.py), identical locally
and in the container.

Cloud Run sets PORT; WEB_CONCURRENCY defaults to the CPUs, threads cover I/O waits on
GCS/Firestore/Pub/Sub. The timeout sits above the longest push ack deadline so gunicorn
never kills a request Pub/Sub is still waiting for. Behind nginx (services/common/front.py)
gunicorn is bound to a unix socket by its command line instead.
"""
import multiprocessing

from services.common.config import Settings

_s = Settings.from_env()
bind = f"{_s.host}:{_s.port}"
workers = _s.web_concurrency or multiprocessing.cpu_count()
threads = _s.gunicorn_threads
worker_class = "gthread"
timeout = _s.gunicorn_timeout
graceful_timeout = _s.gunicorn_graceful_timeout
keepalive = 5
accesslog = None  # request logs come from the app, as JSON
errorlog = "-"
loglevel = _s.log_level.lower()
# Gunicorn >= 25 opens a control socket at one per-user default path: every gunicorn on a host
# (each service, each test stack) would share it and unlink each other's. Nothing here uses it.
control_socket_disable = True
