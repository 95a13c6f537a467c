"""The process every service container runs: gunicorn, and for the services that face clients
nginx in front of it.

Why a proxy: gunicorn's gthread worker hands a connection to a request thread as soon as it is
readable, so a client that trickles its headers or its body holds that thread for as long as
it likes (10 such connections took ingest down; 20 slow bodies held every upload slot). nginx
reads each request on its event loop — headers within FRONT_HEADER_TIMEOUT_SECONDS, the body
with no pause longer than FRONT_BODY_TIMEOUT_SECONDS, spooled to memory/disk — and passes it
to gunicorn over a unix socket only once it is whole, so a request thread is only ever given
complete requests. Push services face only Pub/Sub (Google's front end and a well-behaved
client) and run gunicorn alone. The same entry runs locally (localcloud/stack.py) and in the
container (Dockerfile), so tests see what production runs.

    python -m services.common.front 'services.ingest.app:create_app()'

nginx is configured here, from the settings, rather than by a file beside it: the timeouts,
the body limit and the problem bodies of its own refusals are the settings' values, never a
second copy of them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import get_settings

CLIENT_FACING = {"ingest", "console"}  # services whose callers are clients on the internet


def _problem(status: int, title: str, detail: str) -> str:
    """An nginx `return` body: the same problem+json the app answers (RFC 9457)."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return "'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"


def nginx_conf(listen: str, upstream_socket: str, work_dir: str) -> str:
    s = get_settings()
    user = "user root;" if os.geteuid() == 0 else ""  # workers as the master's user (tests run as root)
    # The app's own words for these (services/ingest/body.py), for a body nginx refuses first.
    too_large = _problem(413, "Upload too large",
                         f"request body exceeds the limit of {s.max_upload_bytes} bytes (MAX_UPLOAD_BYTES); "
                         "upload big files with a signed upload URL (POST /v1/upload-urls)")
    return f"""# written by services/common/front.py at start-up; do not edit
daemon off;
{user}
worker_processes 1;
pid {work_dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections {s.front_max_connections}; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {work_dir}/body;
    proxy_temp_path {work_dir}/proxy;
    fastcgi_temp_path {work_dir}/fastcgi;
    uwsgi_temp_path {work_dir}/uwsgi;
    scgi_temp_path {work_dir}/scgi;
    # The whole header within this time, else the connection is closed (nginx: one timer for the header).
    client_header_timeout {s.front_header_timeout_seconds:g}s;
    # No pause between two reads of the body longer than this (nginx's timer restarts on each read);
    # past it nginx closes the connection without an answer, as it does for the header timeout.
    client_body_timeout {s.front_body_timeout_seconds:g}s;
    client_max_body_size {s.max_upload_bytes + 65536};
    client_body_buffer_size 1m;
    large_client_header_buffers 4 16k;
    keepalive_timeout 5s;
    send_timeout {s.front_body_timeout_seconds:g}s;
    upstream app {{
        # No kept-alive connections to gunicorn: one unix-socket connection per request costs
        # microseconds, and a kept one that gunicorn closes (idle, or after a request whose body
        # the app did not read) turns the next POST sent down it into a 502.
        server unix:{upstream_socket};
    }}
    server {{
        listen {listen};
        error_page 413 = @too_large;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "close";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # Whole requests only reach gunicorn (the point of this proxy).
            proxy_request_buffering on;
            proxy_read_timeout {s.front_upstream_timeout_seconds:g}s;
            proxy_send_timeout {s.front_upstream_timeout_seconds:g}s;
        }}
        location @too_large {{
            default_type application/problem+json;
            return 413 {too_large};
        }}
    }}
}}
"""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.common.front 'services.<name>.app:create_app()'", file=sys.stderr)
        return 2
    app = argv[0]
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:services.common.gunicorn_conf", app]
    service = app.split(".")[1] if app.startswith("services.") else ""
    if service not in CLIENT_FACING:
        os.execv(sys.executable, gunicorn)
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        print("nginx not found: install it (Debian: apt-get install nginx-light)", file=sys.stderr)
        return 1
    work_dir = tempfile.mkdtemp(prefix=f"front-{service}-")
    sock = f"{work_dir}/app.sock"
    s = get_settings()
    Path(work_dir, "nginx.conf").write_text(nginx_conf(f"{s.host}:{s.port}", sock, work_dir))
    app_proc = subprocess.Popen(gunicorn[:-1] + ["--bind", f"unix:{sock}", app])  # the command line wins over the config
    front_proc = subprocess.Popen([nginx, "-e", "stderr", "-p", work_dir, "-c", f"{work_dir}/nginx.conf"])
    return _supervise([app_proc, front_proc], work_dir)


def _supervise(procs: list[subprocess.Popen], work_dir: str) -> int:
    """Run until either process ends (or we are told to stop), then stop the other: the
    container lives and dies with both, so the platform restarts it whole."""
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.returncode is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        pid, status = os.wait()  # the first of the two to end
        ended = next(p for p in procs if p.pid == pid)
        ended.returncode = os.waitstatus_to_exitcode(status)
        if not stopping:
            print(f"front: {'gunicorn' if ended is procs[0] else 'nginx'} exited ({ended.returncode}); stopping the rest",
                  file=sys.stderr)
            stop(signal.SIGTERM, None)
        for p in procs:
            try:
                p.wait(timeout=25)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return 0 if stopping and ended.returncode in (0, -signal.SIGTERM, -signal.SIGINT) else (ended.returncode or 1)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
