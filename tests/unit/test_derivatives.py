"""Derivative images (`/v1/img/...`): the grammar and its signature, where the window is cut, the
libvips path upright in every orientation, and the route in-process (real media child, in-memory
store) — refused, limited, rendered once and then served from storage."""
from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from localcloud import samples
from services.analyze.image import analyze_image
from services.ingest import derivative_url as du
from services.ingest.app import create_app
from services.media import sandbox
from services.render.derive import LIBVIPS_TYPES, Spec, decoder_for, focus_of, plan, render_derivative
from tests.support.fakes import memory_runtime
from tests.unit.test_orientation_formats import MAKERS, UPRIGHT, WHITE, assert_upright

KEYS = (("k2", b"n" * 32), ("k1", b"o" * 32))  # k2 is handed out; k1 (the previous key) still verifies
JOB = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
BUCKET = "mediarelay-originals"


def url(options: str, job: str = JOB, client: str = "c1", kid: str = "k2", keys=KEYS) -> str:
    return du.signed_path(kid, client, du.client_secret(dict(keys)[kid], client), options, job)


# --- grammar and signature -------------------------------------------------------------------------------

def test_a_signed_url_verifies_and_every_alteration_is_refused():
    path = url("w:400/h:400/fit:cover")
    sig, options, job = path.removeprefix(du.PREFIX).split("/", 1)[0], "w:400/h:400/fit:cover", JOB
    assert du.verify(KEYS, sig, options, job) == "c1"
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for s, o, j in [(sig, "w:401/h:400/fit:cover", job), (sig, options, OTHER), (flipped, options, job),
                    (sig.replace("c1", "c2", 1), options, job), ("", options, job), ("k9" + sig[2:], options, job)]:
        with pytest.raises(du.BadSignature):
            du.verify(KEYS, s, o, j)


def test_keys_rotate_with_an_overlap():
    sig = url("w:400", kid="k1").removeprefix(du.PREFIX).split("/")[0]
    assert du.verify(KEYS, sig, "w:400", JOB) == "c1"  # the old key still listed: its URLs keep working
    with pytest.raises(du.BadSignature):
        du.verify(KEYS[:1], sig, "w:400", JOB)  # dropped: refused


def test_one_client_secret_signs_nothing_for_another():
    assert du.client_secret(b"n" * 32, "c1") != du.client_secret(b"n" * 32, "c2")


@pytest.mark.parametrize("bad", ["", "w:0", "w:012", "w:x", "h:-1", "fit:fill", "dpr:0", "dpr:2.555", "q:101", "format:png",
                                 "gravity:north", "gravity:focus:1.2,0", "w:1/w:2", "size:3", "w", "fit:cover"])
def test_options_outside_the_grammar_are_named(bad):
    with pytest.raises(du.BadOptions):
        du.parse(bad)


def test_equal_meanings_normalise_alike():
    assert du.parse("w:400/gravity:center").normalised() == du.parse("gravity:centre/w:400").normalised()
    o = du.parse("w:400/h:300/fit:fill-down/dpr:2/q:70/format:webp/gravity:focus:0.25,0.75")
    assert (o.box(), o.fit, o.quality, o.format, o.focus) == ((800, 600), "fill-down", 70, "webp", (0.25, 0.75))


@pytest.mark.parametrize("accept,fmt", [("image/avif,image/webp,*/*", "avif"), ("image/webp,*/*;q=0.8", "webp"),
                                        ("*/*", "jpeg"), (None, "jpeg")])
def test_auto_format_follows_accept(accept, fmt):
    assert du.chosen_format(du.parse("w:10"), accept) == fmt
    assert du.chosen_format(du.parse("w:10/format:jpeg"), "image/avif") == "jpeg"


# --- geometry ---------------------------------------------------------------------------------------------

def test_windows_are_never_enlarged_and_follow_the_fit():
    assert plan(4000, 3000, (800, None), "contain").size == (800, 600)
    assert plan(4000, 3000, (800, 800), "contain").size == (800, 600)
    assert plan(4000, 3000, (800, 800), "cover").size == (800, 800)
    assert plan(400, 300, (800, 800), "contain").size == (400, 300)
    assert plan(400, 300, (800, 800), "cover").size == (400, 300)  # the box clipped to the source
    assert plan(400, 300, (800, 800), "fill-down").size == (300, 300)  # the box's shape at scale 1
    p = plan(4000, 1000, (500, 500), "cover", (0.9, 0.5))
    assert p.scaled == (2000, 500) and p.window == (1500, 0, 500, 500)  # kept inside the picture


# --- rendering in the child's function -------------------------------------------------------------------

TYPES = {"jpeg": "image/jpeg", "png-exif-chunk": "image/png", "webp": "image/webp", "tiff-lzw": "image/tiff",
         "heic": "image/heic"}


DECODERS = [(kind, decoder) for kind in TYPES for decoder in ("libvips", "pillow")
            if decoder == "pillow" or TYPES[kind] in LIBVIPS_TYPES]


@pytest.mark.parametrize("o", range(1, 9))
@pytest.mark.parametrize("kind,decoder", DECODERS)
def test_every_orientation_comes_out_upright_through_libvips_and_pillow(kind, decoder, o, tmp_path):
    raw = MAKERS[kind](o)
    (tmp_path / "src").write_bytes(raw)
    a = analyze_image(raw, 10**8)
    spec = Spec(TYPES[kind], a, (96, 96), "contain", (0.5, 0.5), "webp", 100, WHITE, 10**8, decoder=decoder)
    d = render_derivative(b"", str(tmp_path / "src"), spec)
    assert d.decoder == decoder
    assert_upright(d.data, UPRIGHT)


def test_the_decoder_is_the_one_that_measured_better():
    def spec(ctype, size, box):
        return Spec(ctype, {"width": size[0], "height": size[1]}, box, "contain", (0.5, 0.5), "webp", 80, WHITE, 10**9)

    for ctype in LIBVIPS_TYPES:  # streamed: memory follows the output (bench: 100 MP PNG, Pillow over 800 MB)
        assert decoder_for(spec(ctype, (12000, 8400), (800, None))) == "libvips"
    assert decoder_for(spec("image/tiff", (1200, 800), (400, None))) == "pillow"


def face_photo() -> bytes:
    """The astronaut (one face, near the top) above a grey band, 512x768: a centred square cut
    misses the top of her face."""
    canvas = Image.new("RGB", (512, 768), (128, 128, 128))
    canvas.paste(samples.photo("astronaut"), (0, 0))
    return samples.jpeg_bytes(canvas)


@pytest.mark.parametrize("decoder", ["libvips", "pillow"])
def test_gravity_auto_keeps_the_face_whole(tmp_path, decoder):
    raw = face_photo()
    (tmp_path / "src").write_bytes(raw)
    a = analyze_image(raw, 10**8)
    [face] = a["faces"]
    fy0, fy1 = face["y"], face["y"] + face["height"]
    for gravity, keeps in (("auto", True), ("centre", False)):
        focus = focus_of(a, gravity, None)
        p = plan(a["width"], a["height"], (256, 256), "cover", focus)
        spec = Spec("image/jpeg", a, (256, 256), "cover", focus, "jpeg", 90, WHITE, 10**8, decoder=decoder)
        d = render_derivative(b"", str(tmp_path / "src"), spec)
        assert d.size == (256, 256)
        s = p.scaled[1] / a["height"]
        y0, y1 = p.window[1] / s, (p.window[1] + p.window[3]) / s  # the window in source pixels
        assert (y0 <= fy0 and fy1 <= y1) == keeps
        # and the picture is what the window says: the grey band shows at the bottom only when centred
        bottom = np.asarray(Image.open(io.BytesIO(d.data)).convert("L"), np.float32)[-20:]
        assert (bottom.std() < 3) == (not keeps)


# --- the route, in-process ---------------------------------------------------------------------------------

@pytest.fixture
def app(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    rt = memory_runtime(derivative_signing_keys=KEYS)
    raw = face_photo()
    stored = rt.blobs.put_if_absent(BUCKET, f"originals/{JOB}", raw, "image/jpeg")
    source = {"uri": stored.uri, "bucket": BUCKET, "name": stored.name, "generation": stored.generation,
              "content_type": "image/jpeg", "size": len(raw)}
    rt.jobs.create(JOB, {"owner": "c1", "kind": "image", "status": "completed", "source": source,
                         "analysis": analyze_image(raw, 10**8)})
    rt.jobs.create(OTHER, {"owner": "c2", "kind": "image", "status": "analyzing", "source": source})
    app = create_app(rt.settings, rt)
    app.rt = rt
    return app


def test_a_miss_renders_once_and_the_next_request_is_served_from_storage(app):
    client = app.test_client()
    path = url("w:200/h:200/fit:cover/format:auto")
    before = sandbox.children_started()
    first = client.get(path, headers={"Accept": "image/webp,*/*"})
    assert first.status_code == 200, first.get_json()
    assert first.content_type == "image/webp" and first.headers["Vary"] == "Accept"
    assert "immutable" in first.headers["Cache-Control"]
    assert Image.open(io.BytesIO(first.data)).size == (200, 200)
    assert sandbox.children_started() == before + 1
    again = client.get(path, headers={"Accept": "image/webp"})
    assert again.data == first.data and sandbox.children_started() == before + 1  # no child for a hit
    avif = client.get(path, headers={"Accept": "image/avif,image/webp"})
    assert avif.content_type == "image/avif" and sandbox.children_started() == before + 2
    names = [n for (_, n) in app.rt.blobs.objects if "/derivatives/" in n]
    assert len(names) == 2 and all(n.startswith(f"renditions/{JOB}/") for n in names)  # erased with the job's folder


def test_concurrent_misses_render_once(app):
    path = url("w:120/h:90/fit:cover/format:jpeg")
    before = sandbox.children_started()
    answers = []

    def fetch():
        answers.append(app.test_client().get(path))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.data for a in answers}) == 1
    assert sandbox.children_started() == before + 1


def test_refusals_say_why(app):
    client = app.test_client()
    good = url("w:200")
    assert client.get(good.replace("w:200", "w:201")).status_code == 403  # altered
    assert client.get(f"{du.PREFIX}k2.c1.x/w:200/{JOB}").status_code == 403  # unsigned
    assert client.get(url("w:200", job=OTHER)).status_code == 404  # another client's job, signed by c1
    assert client.get(url("w:200", job=OTHER, client="c2")).status_code == 409  # its owner: not analysed yet
    for options, setting in (("w:5000", "DERIVATIVE_MAX_EDGE"), ("w:4096/h:4096/fit:cover", "MAX_DERIVATIVE_PIXELS"),
                             ("w:100/dpr:5", "DERIVATIVE_MAX_DPR")):
        answer = client.get(url(options))
        assert answer.status_code == 400 and setting in answer.get_json()["detail"], options
    assert client.get(url("w:200/fit:stretch")).status_code == 400



def _doc_block(lang: str, marker: str) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    return next(b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith(lang) and marker in b)


def test_the_signing_examples_in_the_docs_sign_what_the_service_verifies():
    key = {"kid": "k2", "secret": du.client_secret(dict(KEYS)["k2"], "c1")}
    want = "https://api.example.test" + url("w:400/h:400/fit:cover/dpr:2/format:auto")
    scope: dict = {}
    exec(_doc_block("python", "def image_url"), scope)  # our own documentation's example, run as a reader would
    assert scope["image_url"]("https://api.example.test", key, "c1", "w:400/h:400/fit:cover/dpr:2/format:auto", JOB) == want
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the JavaScript example")
    js = _doc_block("js", "function imageUrl") + (
        f"\nconsole.log(imageUrl('https://api.example.test', {json.dumps(key)}, 'c1', "
        f"'w:400/h:400/fit:cover/dpr:2/format:auto', '{JOB}'));")
    assert subprocess.run([node, "-e", js], capture_output=True, text=True, timeout=30, check=True).stdout.strip() == want


def test_a_derivative_stored_while_its_job_is_being_deleted_does_not_outlive_it(app):
    """The deletion is asked while the miss renders (up to DERIVATIVE_RENDER_SECONDS, longer than
    DELETE_SETTLE_SECONDS): notify's erase may already have passed when the miss stores its result."""
    rt = app.rt
    put = rt.blobs.put_if_absent

    def deletion_asked_meanwhile(bucket, name, *args, **kw):
        if "/derivatives/" in name and not name.endswith(".lease"):
            rt.jobs.record(JOB, {"deleted.requested_at": "2026-12-07T00:00:00Z"})
            rt.blobs.delete_prefix(rt.settings.renditions_bucket, f"renditions/{JOB}/")  # the erase ran before the write
        return put(bucket, name, *args, **kw)

    rt.blobs.put_if_absent = deletion_asked_meanwhile
    answer = app.test_client().get(url("w:64/format:jpeg"))
    assert answer.status_code == 404
    assert not [n for (_, n) in rt.blobs.objects if "/derivatives/" in n], "a derivative outlived its job"


def test_a_lease_left_by_a_dead_request_is_taken_over(app):
    rt = app.rt
    path = url("w:80/format:jpeg")
    rt.settings = dataclasses.replace(rt.settings, derivative_lease_seconds=1.0)
    first = app.test_client().get(path)
    [name] = [n for (_, n) in rt.blobs.objects if "/derivatives/" in n]
    rt.blobs.delete(rt.settings.renditions_bucket, name)
    rt.blobs.try_create(rt.settings.renditions_bucket, name + ".lease")  # its holder died before writing
    rt.blobs.created_at[(rt.settings.renditions_bucket, name + ".lease")] -= 5
    again = app.test_client().get(path)
    assert again.status_code == 200 and again.data == first.data
    assert (rt.settings.renditions_bucket, name + ".lease") not in rt.blobs.objects


def test_only_the_listed_widths_are_served_when_a_list_is_set(app):
    app.rt.settings = dataclasses.replace(app.rt.settings, derivative_widths=("320", "640"))
    client = app.test_client()
    refused = client.get(url("w:300/format:jpeg"))
    assert refused.status_code == 400 and "DERIVATIVE_WIDTHS" in refused.get_json()["detail"]
    assert client.get(url("w:320/format:jpeg")).status_code == 200
