"""`make screenshots`: every console page in docs/console/, from a private local cloud with the
`make run` samples (images and a video), a failed job and a dead-lettered one. Not run by CI
(it writes tracked files).

    python -m tests.support.screenshots docs/console
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from localcloud.samples import write_samples
from localcloud.stack import private_stack
from services.client import IngestClient
from tests.support.console import failed_upload, parked_job

BROWSER = Path(__file__).resolve().parents[1] / "browser"


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-shots") as cfg:
        client = IngestClient(cfg.url("ingest"), api_key=cfg.api_key)
        samples = write_samples(Path(tmp) / "samples")
        jobs = {p.name: client.submit(p)["job_id"] for p in samples}
        failed = failed_upload(cfg)
        client.wait([*jobs.values(), failed], timeout=300)
        parked_job(cfg)
        shown = [jobs["cut.mp4"], failed, jobs["astronaut.jpg"]]
        run = subprocess.run(["node", str(BROWSER / "console.mjs"), "shots", cfg.url("iap"), str(out.resolve()), *shown],
                             cwd=BROWSER, capture_output=True, text=True, timeout=300)
        print(run.stdout.strip() or run.stderr[-2000:])
        return run.returncode
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")))
