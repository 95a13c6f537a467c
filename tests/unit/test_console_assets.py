"""The console serves its own copy of hls.js: it must be the version the browser tests pin."""
from __future__ import annotations

import json

from services.common.config import REPO_ROOT


def test_the_shipped_hls_js_is_the_pinned_one():
    pinned = json.loads((REPO_ROOT / "tests" / "browser" / "package.json").read_text())["dependencies"]["hls.js"]
    shipped = (REPO_ROOT / "services" / "console" / "static" / "vendor" / "hls.min.js").read_text()
    assert f'"{pinned}"' in shipped, f"services/console/static/vendor/hls.min.js is not hls.js {pinned}"
