"""Settings are declared once (services/common/config.py): the configuration page, Terraform's
environment and the services' own reading all follow that one declaration."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.common.config import ALL, REPO_ROOT, Settings, declared, markdown

DOC = REPO_ROOT / "docs" / "configuration.md"
RUN_TF = REPO_ROOT / "terraform" / "run.tf"
DECLARED = {d.env: d for _, d in declared()}


def test_the_configuration_page_is_the_declaration():
    assert DOC.read_text() == markdown(), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_has_a_meaning_a_group_and_readers():
    envs = [d.env for _, d in declared()]
    assert len(envs) == len(set(envs))
    for _, d in declared():
        assert d.help and d.group and d.services, d.env
        assert set(d.services) <= set(ALL), d.env


def test_defaults_are_what_the_environment_would_give():
    """A declared default parses back to itself: the page shows what a service really runs with."""
    defaults = Settings.from_env({})
    spelled = Settings.from_env({d.env: d.shown_default() for _, d in declared()
                                 if not isinstance(d.default, Path)})
    assert spelled == defaults


def test_a_bad_value_stops_start_up_naming_the_variable():
    with pytest.raises(ValueError, match="MAX_UPLOAD_BYTES='lots'"):
        Settings.from_env({"MAX_UPLOAD_BYTES": "lots"})
    with pytest.raises(ValueError, match="FLATTEN_BACKGROUND"):
        Settings.from_env({"FLATTEN_BACKGROUND": "#12"})


def _terraform_env() -> tuple[set[str], set[str]]:
    """Every variable Terraform sets on a service, and those it sets on ingest alone."""
    text = RUN_TF.read_text()
    every = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", text, re.M))
    ingest_only = set()
    for block in re.findall(r"for k, v in \{([^{}]*)\} : k => v if name == \"ingest\"", text):
        ingest_only |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", block, re.M))
    return every, ingest_only


def test_terraform_sets_only_declared_settings_on_the_services_that_read_them():
    every, ingest_only = _terraform_env()
    assert {"GOOGLE_CLOUD_PROJECT", "PUSH_AUDIENCE", "CLIENT_TOKEN_AUDIENCES"} <= every  # the scan reads run.tf
    assert every - set(DECLARED) == set()
    assert ingest_only and all("ingest" in DECLARED[name].services for name in ingest_only)
    buckets = json.loads((REPO_ROOT / "schemas" / "topology.json").read_text())["buckets"]
    assert {b["env"] for b in buckets.values()} <= set(DECLARED)
