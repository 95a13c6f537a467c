"""A client generated from our contract (services/ingest/openapi.json) by openapi-python-client
(pinned in constraints.txt; it runs offline) uploads, multipart and raw body, against the
running stack, and reads the job back: the contract is one the generators clients use can read."""
from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from localcloud import samples
from services.common.config import REPO_ROOT

PACKAGE = "mediarelay_generated_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    tool = Path(sys.executable).with_name("openapi-python-client")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff
    run = subprocess.run([str(tool), "generate", "--path", str(REPO_ROOT / "services" / "ingest" / "openapi.json"),
                          "--output-path", str(out / PACKAGE), "--meta", "none"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=out)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _jpeg() -> bytes:
    return samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes


def test_a_generated_client_uploads_multipart_and_raw_and_reads_the_job(generated, stack):
    upload = importlib.import_module(f"{PACKAGE}.api.default.upload")
    get_job = importlib.import_module(f"{PACKAGE}.api.default.get_job")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    client = generated.AuthenticatedClient(base_url=stack.url("ingest"), token=stack.api_key, timeout=None)

    multipart = models.UploadFilesBody(file=types.File(payload=io.BytesIO(_jpeg()), file_name="multi.jpg",
                                                        mime_type="image/jpeg"))
    raw = types.File(payload=io.BytesIO(_jpeg()), file_name="raw.jpg", mime_type="image/jpeg")
    for body, filename, extra in ((multipart, "multi.jpg", {}), (raw, "raw.jpg", {"x_filename": "raw.jpg"})):
        resp = upload.sync_detailed(client=client, body=body, **extra)
        assert resp.status_code == 202, resp.content
        accepted = resp.parsed
        assert isinstance(accepted, models.Accepted) and accepted.status.value == "received"
        job = get_job.sync(client=client, job_id=accepted.job_id)
        assert isinstance(job, models.Job), job
        assert job.job_id == accepted.job_id and job.kind.value == "image"
        assert job.source.filename == filename and job.source.content_type == "image/jpeg"
