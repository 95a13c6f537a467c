"""The local cloud: topology created from the one file, processes stopped exactly and wholly."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from localcloud.processes import Proc, ProcessManager
from localcloud.provision import push_subscription
from localcloud.taps import free_port
from services.pipeline.topology import load_topology


def test_subscriptions_get_the_topology_backoff_unless_a_stack_shortens_it():
    for spec in load_topology().push_subscriptions.values():
        policy = push_subscription("p", spec, "http://127.0.0.1:1/push").retry_policy
        assert policy.minimum_backoff.total_seconds() == spec.minimum_backoff_seconds
        assert policy.maximum_backoff.total_seconds() == spec.maximum_backoff_seconds
        short = push_subscription("p", spec, "http://127.0.0.1:1/push", retry_backoff=(1, 10))
        assert (short.retry_policy.minimum_backoff.total_seconds(), short.retry_policy.maximum_backoff.total_seconds()) == (1, 10)
        assert short.dead_letter_policy == push_subscription("p", spec, "http://127.0.0.1:1/push").dead_letter_policy


def test_stop_ends_the_whole_process_group_including_forked_children(tmp_path):
    """The Firestore launcher forks java instead of exec'ing it; stopping must not orphan it."""
    port = free_port()
    pm = ProcessManager(tmp_path)
    script = (
        "import http.server, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    proc = Proc("launcher", [sys.executable, "-c", script], f"http://127.0.0.1:{port}/", dict(os.environ), cwd=tmp_path)
    assert pm.start(proc)
    pm.wait_healthy(proc, timeout=20)
    assert not pm.start(proc)  # idempotent: already running
    leader = pm.running("launcher")["pid"]
    children = subprocess.run(["pgrep", "-g", str(leader)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2
    assert pm.stop("launcher")
    time.sleep(0.2)
    for pid in children:
        state = _state(int(pid))
        assert state in (None, "Z"), f"pid {pid} survived stop (state {state})"
    assert pm.running("launcher") is None and pm.names() == []


def _state(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0]
    except OSError:
        return None
