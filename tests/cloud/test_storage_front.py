"""The local cloud's storage front: signed reads only, as a private GCS bucket answers them.

fake-gcs-server serves every object to anyone; clients are given the front's address for
signed reads, so an unsigned or broken URL fails here as it would in production."""
from __future__ import annotations

import time
import uuid

import requests
from google.cloud import storage
from google.oauth2 import service_account

from localcloud import samples
from localcloud.stack import local_signing_key
from services.common.config import Settings
from services.pipeline.blobs import BlobStore

from .conftest import wait_for_status

BUCKET = Settings.from_env().renditions_bucket


def _object(stack, data: bytes) -> str:
    name = f"front-test/{uuid.uuid4().hex}/a b+c.bin"  # a name that needs quoting in the path
    storage.Client(project=stack.project).bucket(BUCKET).blob(name).upload_from_string(data, content_type="video/mp2t")
    return name


def _signed(stack, name: str, ttl: int = 60) -> str:
    url, _ = BlobStore(stack.project).signed_get_url(BUCKET, name, None, ttl, key_file=str(local_signing_key(stack.state_dir)),
                                                     endpoint=stack.url("storage"))
    return url


def test_a_signed_url_reads_the_object_whole_and_by_range(stack):
    data = bytes(range(256)) * 64
    name = _object(stack, data)
    url = _signed(stack, name)
    assert url.startswith(stack.url("storage") + f"/{BUCKET}/")
    whole = requests.get(url, timeout=10)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["Content-Type"] == "video/mp2t"
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    # HEAD with a URL signed for HEAD (the method is part of the canonical request).
    creds = service_account.Credentials.from_service_account_file(str(local_signing_key(stack.state_dir)))
    blob = storage.Client(project=stack.project).bucket(BUCKET).blob(name)
    head_url = blob.generate_signed_url(version="v4", method="HEAD", expiration=60, credentials=creds,
                                        api_access_endpoint=stack.url("storage"))
    head = requests.head(head_url, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data) and not head.content


def test_unsigned_tampered_and_expired_urls_are_refused_with_gcs_errors(stack):
    name = _object(stack, b"secret bytes")
    path = f"/{BUCKET}/{requests.utils.quote(name)}"
    # The break the front closes: fake-gcs-server itself hands the object to anyone.
    assert requests.get(stack.url("gcs") + path, timeout=10).content == b"secret bytes"

    unsigned = requests.get(stack.url("storage") + path, timeout=10)
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text
    assert unsigned.headers["Content-Type"].startswith("application/xml")

    url = _signed(stack, name)
    other = _object(stack, b"other secret")
    tampered = url.replace(requests.utils.quote(name), requests.utils.quote(other))
    forged = requests.get(tampered, timeout=10)
    assert forged.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in forged.text
    assert b"secret" not in forged.content

    short = _signed(stack, name, ttl=1)
    time.sleep(1.5)
    expired = requests.get(short, timeout=10)
    assert expired.status_code == 400 and "<Code>ExpiredToken</Code>" in expired.text
    assert requests.get(url, timeout=10).content == b"secret bytes"  # the valid one still reads


def test_the_rendition_urls_a_client_is_given_are_signed_reads_through_the_front(http, ingest_url, stack):
    resp = http.post(f"{ingest_url}/v1/uploads", data=samples.jpeg_bytes(samples.photo()),
                     headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_status(http, ingest_url, resp.json()["job_id"])
    assert job["status"] == "completed", job
    url = job["renditions"][0]["url"]
    assert url.startswith(stack.url("storage") + "/")
    assert requests.get(url, timeout=10).status_code == 200
    unsigned = url.split("?", 1)[0]
    assert requests.get(unsigned, timeout=10).status_code == 403
