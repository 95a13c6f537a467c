"""Starting and stopping background processes we own, by process group and pid file.

Each process starts in its own session, so stopping its group also stops children a
launcher script forked (the Firestore launcher runs java as a child, not via exec).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests


@dataclass
class Proc:
    name: str
    argv: list[str]
    health_url: str
    env: dict
    cwd: Path | None = None


class ProcessManager:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"

    def pidfile(self, name: str) -> Path:
        return self.pid_dir / f"{name}.json"

    def running(self, name: str) -> dict | None:
        path = self.pidfile(name)
        if not path.exists():
            return None
        info = json.loads(path.read_text())
        if _alive(info["pid"]):
            return info
        path.unlink(missing_ok=True)
        return None

    def start(self, proc: Proc) -> bool:
        """Start unless already running; return True if started now."""
        if self.running(proc.name):
            return False
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{proc.name}.log", "ab")
        p = subprocess.Popen(
            proc.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=proc.env, cwd=proc.cwd, start_new_session=True,
        )
        log.close()
        self.pidfile(proc.name).write_text(json.dumps({"pid": p.pid, "argv": proc.argv, "health_url": proc.health_url}))
        return True

    def wait_healthy(self, proc: Proc, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.running(proc.name)
            if info is None:
                raise RuntimeError(f"{proc.name} exited during start-up; log: {self.log_dir / (proc.name + '.log')}\n"
                                   + self.log_tail(proc.name))
            try:
                if requests.get(proc.health_url, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{proc.name} did not answer {proc.health_url} within {timeout:.0f} s; "
                           f"log: {self.log_dir / (proc.name + '.log')}\n" + self.log_tail(proc.name))

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
        return bool(self.stop_many([name], sig, timeout))

    def stop_many(self, names: list[str], sig: int = signal.SIGTERM, timeout: float = 15.0) -> list[str]:
        """Signal every one, then wait for all (a stop is mostly waiting: together, the
        slowest sets the time, not the sum); SIGKILL what outlives `timeout`. Returns the
        names that were running."""
        pids = {}
        for name in names:
            info = self.running(name)
            if info is not None:
                pids[name] = info["pid"]
                _killpg(info["pid"], sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_group_alive(pid) for pid in pids.values()):
            time.sleep(0.1)
        for name, pid in pids.items():
            if _group_alive(pid):
                _killpg(pid, signal.SIGKILL)
                time.sleep(0.2)
            self.pidfile(name).unlink(missing_ok=True)
        return list(pids)

    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to the whole process group (SIGSTOP/SIGCONT freeze and thaw a service)."""
        info = self.running(name)
        if info:
            _killpg(info["pid"], sig)

    def names(self) -> list[str]:
        if not self.pid_dir.exists():
            return []
        return sorted(p.stem for p in self.pid_dir.glob("*.json"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Members may be zombies awaiting their reaper; treat a group of zombies as gone.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            return True
    return False
