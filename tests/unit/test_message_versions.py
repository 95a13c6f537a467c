"""Internal messages stay readable across a rolling deploy (ARCHITECTURE.md, invariant 13):
publishers send the newest version the topology names; consumers read it and the one before."""
from __future__ import annotations

import json
import re

import pytest

from services.common.config import REPO_ROOT
from services.common.errors import BadMessage
from services.pipeline.push import check_schema
from tests.support.fakes import analyzed, ingested, memory_runtime

SCHEMAS = REPO_ROOT / "schemas"
TOPICS = json.loads((SCHEMAS / "topology.json").read_text())["topics"]


def _versions(name: str) -> list[int]:
    return sorted(int(m.group(1)) for p in SCHEMAS.glob(f"{name}.v*.json") if (m := re.search(r"\.v(\d+)\.json$", p.name)))


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_each_topic_publishes_its_newest_version_and_keeps_the_one_before(topic):
    previous = TOPICS[topic].get("previous_version_of")
    if previous:  # the public contract's old version, beside the newest for one release
        assert TOPICS[topic]["schema"] < TOPICS[previous]["schema"] and TOPICS[previous].get("public")
        return
    name, _, version = TOPICS[topic]["schema"].rpartition(".v")
    versions = _versions(name)
    assert int(version) == versions[-1], f"{topic} publishes {name}.v{version}, but v{versions[-1]} exists"
    if int(version) > 1:
        assert int(version) - 1 in versions, f"{name}.v{int(version) - 1} must stay one release beside v{version}"


class _Msg:
    def __init__(self, schema: str, data: dict):
        self.attributes, self.data = {"schema": schema}, data


def test_render_reads_the_previous_analysis_version_and_refuses_another_type():
    """During a rollout an old analyze still publishes the version before the newest."""
    rt = memory_runtime()
    newest = TOPICS["media-analyzed"]["schema"]
    previous = f"media-analyzed.v{int(newest.rpartition('.v')[2]) - 1}"
    message = analyzed("job-00000001")
    check_schema(rt, _Msg(newest, message), newest)
    check_schema(rt, _Msg(previous, message), newest)
    with pytest.raises(BadMessage, match=f"expected a {newest} message, got media-ingested.v1"):
        check_schema(rt, _Msg("media-ingested.v1", ingested("job-00000001")), newest)
