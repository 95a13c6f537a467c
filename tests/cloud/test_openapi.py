"""The API contract (services/ingest/openapi.json) against ingest's real routes, and
schemathesis against the live ingest under gunicorn."""
from __future__ import annotations

import json

import requests

from services.common.config import REPO_ROOT

CONTRACT = json.loads((REPO_ROOT / "services" / "ingest" / "openapi.json").read_text())


def test_the_served_document_is_the_one_in_the_repo(http, ingest_url):
    assert CONTRACT["openapi"].startswith("3.1")
    assert http.get(f"{ingest_url}/openapi.json", timeout=10).json() == CONTRACT
    assert requests.get(f"{ingest_url}/openapi.json", timeout=10).status_code == 401  # like every route but /healthz


SCHEMATHESIS_CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
                       "response_headers_conformance,response_schema_conformance,ignored_auth")


def test_schemathesis_finds_no_5xx_and_no_response_that_breaks_the_document(stack, tmp_path):
    """Property-based requests from the document (valid and invalid), with a valid key, against
    the stack's ingest under gunicorn; `ignored_auth` also sends none and a wrong one."""
    import subprocess
    import sys
    from pathlib import Path

    report = tmp_path / "schemathesis.json"
    out = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", str(REPO_ROOT / "services" / "ingest" / "openapi.json"),
         "--url", stack.url("ingest"), "-H", f"Authorization: Bearer {stack.api_key}",
         "--checks", SCHEMATHESIS_CHECKS, "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "25",
         "--workers", "1", "--seed", "13", "--generation-database", "none", "--request-timeout", "30",
         "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its .schemathesis/ cache goes there
    summary = out.stdout[-3000:]
    print(summary)  # the run's summary, for the record (pytest -s)
    assert out.returncode == 0, summary + out.stderr[-2000:]
