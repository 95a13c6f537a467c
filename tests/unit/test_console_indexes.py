"""Every query the console issues has its composite index declared in Terraform: the emulator
runs queries without indexes, production refuses them (FAILED_PRECONDITION), so this is the guard."""
from __future__ import annotations

import re

import hcl2

from services.common.config import REPO_ROOT
from services.console.queries import query_shapes


def _declared() -> set[tuple[tuple[str, str], ...]]:
    doc = hcl2.loads((REPO_ROOT / "terraform" / "firestore.tf").read_text())
    out = set()
    for block in doc.get("resource", []):
        for kind, resources in block.items():
            if kind.strip('"') != "google_firestore_index":
                continue
            for spec in resources.values():
                if spec.get("collection") != "${var.jobs_collection}":
                    continue
                # for_each = toset([...]): one index per key, `each.key` standing for it
                keys = re.findall(r'"([^"]+)"', spec.get("for_each", "")) or [None]
                for key in keys:
                    out.add(tuple((f["field_path"].strip('"').replace("${each.key}", key or ""), f["order"].strip('"'))
                                  for f in spec["fields"]))
    return out


def test_every_console_query_has_its_indexes():
    """A shape with equality filters and an order is served by merging, for each filter field,
    the index (field ASC, order field DIR); with none, by the order field's automatic index."""
    declared = _declared()
    missing = []
    for equalities, (order, direction) in query_shapes():
        for field in equalities:
            if ((field, "ASCENDING"), (order, direction)) not in declared:
                missing.append(f"({field} ASCENDING, {order} {direction})")
    assert not missing, f"terraform/firestore.tf lacks the composite indexes {sorted(set(missing))}"
