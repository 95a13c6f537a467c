"""Gunicorn settings from the environment, identical locally and in the container.

Cloud Run sets PORT; WEB_CONCURRENCY defaults to the CPUs, threads cover I/O waits on
GCS/Firestore/Pub/Sub. The timeout sits above the longest push ack deadline so gunicorn
never kills a request Pub/Sub is still waiting for.
"""
import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
accesslog = None  # request logs come from the app, as JSON
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Gunicorn >= 25 opens a control socket at one per-user default path: every gunicorn on a host
# (each service, each test stack) would share it and unlink each other's. Nothing here uses it.
control_socket_disable = True
