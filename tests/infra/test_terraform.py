"""terraform/ against schemas/topology.json, offline.

The google provider cannot be downloaded on these machines, so there is no `terraform plan`.
Instead the configuration is parsed (python-hcl2) and its expressions evaluated with the
topology file (tests/infra/hcl_eval.py): every topic, push subscription, push endpoint,
retry and dead-letter policy, dead-letter topic and ops subscription, the IAM that
dead-lettering needs, and the bucket notification must be exactly what the topology says.
The last test mutates a copy of terraform/ and proves the checks notice.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lark import Token, Tree

from .hcl_eval import Module, Ref, ref

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
TOPOLOGY_FILE = REPO / "schemas" / "topology.json"
REQUIRED_VARS = {"project_id": "acme-media", "image_tag": "0123abc"}

# Arguments whose value must come from the topology (each.value...), never a literal.
DERIVED_SUBSCRIPTION_ARGS = ("name", "topic", "ack_deadline_seconds", "push_endpoint", "minimum_backoff",
                             "maximum_backoff", "dead_letter_topic", "max_delivery_attempts")


def s(r: Ref) -> str:
    """How a reference reads inside a string template."""
    return "${" + str(r) + "}"


def instances(mod: Module, rtype: str, name: str) -> dict:
    body = mod.resources[(rtype, name)]
    return {key: mod.render(body, scope) for key, scope in mod.instances(body).items()}


def module_instances(mod: Module, name: str) -> dict:
    body = mod.modules[name]
    return {key: mod.render(body, scope) for key, scope in mod.instances(body).items()}


def one(blocks: list[dict] | None) -> dict:
    assert blocks is not None and len(blocks) == 1, f"expected exactly one block, got {blocks!r}"
    return blocks[0]


def uses_each(node) -> bool:
    if isinstance(node, Token):
        return False
    if node.data == "identifier" and str(node.children[0]) == "each":
        return True
    return any(uses_each(c) for c in node.children if isinstance(c, Tree))


def find_attribute(body: Tree, name: str) -> list[Tree]:
    found = []
    for node in body.children:
        if not isinstance(node, Tree):
            continue
        if node.data == "attribute" and str(node.children[0].children[0]) == name:
            found.append(node.children[-1])
        elif node.data in ("block", "body"):
            found += find_attribute(node, name)
    return found


# -- the checks (plain functions, so the mutation test can run them on a broken copy) --------

def check_reads_the_shared_topology(mod: Module, topo: dict) -> None:
    assert mod.local("topology") == topo, "terraform must jsondecode(file()) schemas/topology.json"


def check_topics(mod: Module, topo: dict) -> None:
    topics = instances(mod, "google_pubsub_topic", "topic")
    assert set(topics) == set(topo["topics"])
    for name, spec in topo["topics"].items():
        assert topics[name]["name"] == name
        assert topics[name]["message_retention_duration"] == f"{spec['message_retention_seconds']}s", name
    public = [n for n, t in topo["topics"].items() if t.get("public")]
    assert public and all(topics[n]["message_retention_duration"] for n in public)


def check_push_subscriptions(mod: Module, topo: dict) -> None:
    subs = instances(mod, "google_pubsub_subscription", "push")
    dead_letter_topics = instances(mod, "google_pubsub_topic", "dead_letter")
    audience = mod.var("push_audience")
    assert isinstance(audience, str) and audience, "push audience: a static, non-empty default"
    assert set(subs) == set(topo["push_subscriptions"])
    for name, spec in topo["push_subscriptions"].items():
        sub = subs[name]
        assert sub["name"] == name
        assert sub["topic"] == ref("google_pubsub_topic", "topic", [spec["topic"]], "id"), name
        assert sub["ack_deadline_seconds"] == spec["ack_deadline_seconds"], name

        push = one(sub.get("push_config"))
        endpoint = s(ref("module", "service", [spec["service"]], "uri")) + spec["path"]
        assert push["push_endpoint"] == endpoint, name
        token = one(push.get("oidc_token"))
        assert token["service_account_email"] == ref("google_service_account", "push", "email"), name
        assert token["audience"] == audience, name

        retry = one(sub.get("retry_policy"))
        assert retry["minimum_backoff"] == f"{spec['retry_policy']['minimum_backoff_seconds']}s", name
        assert retry["maximum_backoff"] == f"{spec['retry_policy']['maximum_backoff_seconds']}s", name

        dead_letter = one(sub.get("dead_letter_policy"))
        target = dead_letter["dead_letter_topic"]
        assert isinstance(target, Ref) and str(target).startswith("google_pubsub_topic.dead_letter["), name
        key = target.path[2][1]
        assert dead_letter_topics[key]["name"] == spec["dead_letter_topic"], name
        assert dead_letter["max_delivery_attempts"] == spec["max_delivery_attempts"], name

        assert one(sub.get("expiration_policy"))["ttl"] == "", name

    body = mod.resources[("google_pubsub_subscription", "push")]
    for arg in DERIVED_SUBSCRIPTION_ARGS:
        exprs = find_attribute(body, arg)
        assert exprs and all(uses_each(e) for e in exprs), f"push subscription {arg} must come from the topology"


def check_dead_letter_plumbing(mod: Module, topo: dict) -> None:
    dead_letter_topics = instances(mod, "google_pubsub_topic", "dead_letter")
    ops = instances(mod, "google_pubsub_subscription", "dead_letter_ops")
    subs_spec = topo["push_subscriptions"].values()
    assert {t["name"] for t in dead_letter_topics.values()} == {spec["dead_letter_topic"] for spec in subs_spec}
    assert {o["name"] for o in ops.values()} == {spec["dead_letter_subscription"] for spec in subs_spec}
    agent = mod.local("pubsub_service_agent")
    project_number = s(ref("data", "google_project", "this", "number"))
    assert agent == f"serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    publisher = instances(mod, "google_pubsub_topic_iam_member", "dead_letter_agent_publisher")
    subscriber = instances(mod, "google_pubsub_subscription_iam_member", "dead_letter_agent_subscriber")
    own = instances(mod, "google_pubsub_topic_iam_member", "service_dead_letter_publisher")
    for name, spec in topo["push_subscriptions"].items():
        op = next(o for o in ops.values() if o["name"] == spec["dead_letter_subscription"])
        key = op["topic"].path[2][1]
        assert dead_letter_topics[key]["name"] == spec["dead_letter_topic"], f"{op['name']} reads the wrong topic"
        assert "push_config" not in op, "operators pull dead letters"
        assert one(op.get("expiration_policy"))["ttl"] == ""

        dlq_key = next(k for k, t in dead_letter_topics.items() if t["name"] == spec["dead_letter_topic"])
        dlq_ref = ref("google_pubsub_topic", "dead_letter", [dlq_key], "name")
        grants = [g for g in publisher.values() if g["topic"] == dlq_ref]
        assert any(g["role"] == "roles/pubsub.publisher" and g["member"] == agent for g in grants), \
            f"agent cannot publish to {spec['dead_letter_topic']}"
        subs = [g for g in subscriber.values() if g["subscription"] == ref("google_pubsub_subscription", "push", [name], "name")]
        assert any(g["role"] == "roles/pubsub.subscriber" and g["member"] == agent for g in subs), f"agent cannot ack on {name}"
        # The stage dead-letters permanent failures itself.
        stage_member = f"serviceAccount:{s(ref('google_service_account', 'service', [spec['service']], 'email'))}"
        assert any(g["member"] == stage_member for g in own.values() if g["topic"] == dlq_ref), name

    minting = instances(mod, "google_service_account_iam_member", "pubsub_mints_push_tokens")[None]
    assert minting["service_account_id"] == ref("google_service_account", "push", "name")
    assert minting["role"] == "roles/iam.serviceAccountTokenCreator" and minting["member"] == agent


def check_services_and_invokers(mod: Module, topo: dict) -> None:
    services = module_instances(mod, "service")
    assert set(services) == set(topo["services"])
    push_targets = {spec["service"] for spec in topo["push_subscriptions"].values()}
    invokers = instances(mod, "google_cloud_run_v2_service_iam_member", "push_invoker")
    public = instances(mod, "google_cloud_run_v2_service_iam_member", "public_invoker")
    audience = mod.var("push_audience")
    for name, spec in topo["services"].items():
        svc = services[name]
        assert svc["service_account_email"] == ref("google_service_account", "service", [name], "email")
        assert svc["image"].endswith(f"/{name}:{REQUIRED_VARS['image_tag']}")
        # Public services and operators' ones (behind IAP) take internet traffic; the rest are internal.
        outside = spec.get("public") or spec.get("operators")
        expected_ingress = "INGRESS_TRAFFIC_ALL" if outside else "INGRESS_TRAFFIC_INTERNAL_ONLY"
        assert svc["ingress"] == expected_ingress, name
        assert svc["iap_enabled"] == bool(spec.get("operators")), f"{name}: IAP is for the operators' services only"
        assert (name in public) == bool(spec.get("public")), name
        env = svc["env"]
        assert env["PUSH_AUDIENCE"] == audience
        assert env["PUSH_SERVICE_ACCOUNT"] == ref("google_service_account", "push", "email")
        for key, bucket in topo["buckets"].items():
            assert env[bucket["env"]] == ref("google_storage_bucket", "bucket", [key], "name")
        deadlines = [s["ack_deadline_seconds"] for s in topo["push_subscriptions"].values() if s["service"] == name]
        assert svc["timeout_seconds"] >= max(deadlines, default=1), f"{name} times out before Pub/Sub stops waiting"
        if name in push_targets:
            assert invokers[name]["member"] == f"serviceAccount:{s(ref('google_service_account', 'push', 'email'))}"
            assert invokers[name]["role"] == "roles/run.invoker"
    for grant in public.values():
        assert grant["member"] == "allUsers"


def check_publishers(mod: Module, topo: dict) -> None:
    grants = instances(mod, "google_pubsub_topic_iam_member", "service_publisher")
    have = {(g["member"], g["topic"]) for g in grants.values()}
    for name, spec in topo["services"].items():
        member = f"serviceAccount:{s(ref('google_service_account', 'service', [name], 'email'))}"
        for topic in spec["publishes"]:
            assert (member, ref("google_pubsub_topic", "topic", [topic], "name")) in have, f"{name} cannot publish {topic}"


def check_gcs_notification(mod: Module, topo: dict) -> None:
    notifications = instances(mod, "google_storage_notification", "upload")
    expected = {name: t["gcs_notification"] for name, t in topo["topics"].items() if "gcs_notification" in t}
    assert expected, "the topology declares the big-upload notification"
    assert set(notifications) == set(expected)
    buckets = instances(mod, "google_storage_bucket", "bucket")
    assert set(buckets) == set(topo["buckets"])
    for topic, spec in expected.items():
        n = notifications[topic]
        assert spec["bucket"] in topo["buckets"]
        assert n["bucket"] == ref("google_storage_bucket", "bucket", [spec["bucket"]], "name")
        assert n["topic"] == ref("google_pubsub_topic", "topic", [topic], "id")
        assert n["object_name_prefix"] == spec["object_prefix"]
        assert n["event_types"] == spec["event_types"]
        assert n["payload_format"] == spec["payload_format"]
        # The staging prefix is temporary: a lifecycle rule deletes leftovers.
        rules = buckets[spec["bucket"]]["lifecycle_rule"]
        assert any(r["condition"][0].get("matches_prefix") == [spec["object_prefix"]] for r in rules)


def check_nothing_written_twice(mod: Module, topo: dict) -> None:
    names = set(topo["topics"]) | set(topo["push_subscriptions"])
    for spec in topo["push_subscriptions"].values():
        names |= {spec["dead_letter_topic"], spec["dead_letter_subscription"], spec["path"]}
    names |= {b["default"] for b in topo["buckets"].values()} | {b["env"] for b in topo["buckets"].values()}
    prose = {"description", "display_name", "content"}
    offenders = []

    def walk(node, skip=False):
        if isinstance(node, Token):
            if not skip and node.type == "STRING_CHARS" and any(n in str(node) for n in names if len(n) > 1):
                offenders.append(str(node))
            return
        if node.data == "attribute" and str(node.children[0].children[0]) in prose:
            skip = True
        for child in node.children:
            walk(child, skip)

    import hcl2

    for path in sorted(mod.directory.rglob("*.tf")):
        walk(hcl2.parses_to_tree(path.read_text()))
    assert not offenders, f"topology names written in HCL instead of read from the topology file: {offenders}"


CHECKS = [
    check_reads_the_shared_topology, check_topics, check_push_subscriptions, check_dead_letter_plumbing,
    check_services_and_invokers, check_publishers, check_gcs_notification, check_nothing_written_twice,
]


# -- tests ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def topo() -> dict:
    return json.loads(TOPOLOGY_FILE.read_text())


@pytest.fixture(scope="module")
def root() -> Module:
    return Module.load(TERRAFORM, REQUIRED_VARS)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_terraform_matches_topology(check, root, topo):
    check(root, topo)


def test_firestore_ttl_and_sweep_index(root):
    field = instances(root, "google_firestore_field", "job_expiry")[None]
    assert (field["collection"], field["field"]) == (root.var("jobs_collection"), "expires_at")
    assert field["ttl_config"] == [{}]
    index = instances(root, "google_firestore_index", "jobs_status_updated_at")[None]
    assert [(f["field_path"], f["order"]) for f in index["fields"]] == [("status", "ASCENDING"), ("updated_at", "ASCENDING")]


def test_firestore_indexes_of_the_jobs_listing_and_key_ttl(root):
    """GET /v1/jobs (services/ingest/listing.py) filters on owner [and status], newest first."""
    by_owner = instances(root, "google_firestore_index", "jobs_owner_created_at")[None]
    assert [(f["field_path"], f["order"]) for f in by_owner["fields"]] == [("owner", "ASCENDING"), ("created_at", "DESCENDING")]
    by_status = instances(root, "google_firestore_index", "jobs_owner_status_created_at")[None]
    assert [(f["field_path"], f["order"]) for f in by_status["fields"]] == [
        ("owner", "ASCENDING"), ("status", "ASCENDING"), ("created_at", "DESCENDING")]
    assert by_owner["collection"] == by_status["collection"] == root.var("jobs_collection")
    cost = instances(root, "google_firestore_index", "jobs_owner_created_at_cost")[None]  # stats: sum() of job costs
    assert [(f["field_path"], f["order"]) for f in cost["fields"]] == [
        ("owner", "ASCENDING"), ("created_at", "ASCENDING"), ("cost.total_usd", "ASCENDING")]
    from services.ingest.jobs import JOB_KEYS

    keys = instances(root, "google_firestore_field", "job_key_expiry")[None]
    assert (keys["collection"], keys["field"], keys["ttl_config"]) == (JOB_KEYS, "expires_at", [{}])
    from services.ingest.grants import GRANTS

    grants = instances(root, "google_firestore_field", "upload_grant_expiry")[None]
    assert (grants["collection"], grants["field"], grants["ttl_config"]) == (GRANTS, "expires_at", [{}])


def test_push_verification_is_never_turned_off_by_terraform(root):
    for name, svc in module_instances(root, "service").items():
        assert "PUSH_VERIFICATION" not in svc["env"], name  # default on: the services refuse to start without PUSH_*
        assert svc["env"]["PUSH_AUDIENCE"] and svc["env"]["PUSH_SERVICE_ACCOUNT"], name


def test_sweep_job_calls_the_sweep_endpoint_with_oidc(root):
    job = instances(root, "google_cloud_scheduler_job", "sweep")[None]
    target = one(job["http_target"])
    assert target["http_method"] == "POST"
    assert target["uri"] == s(ref("module", "service", [root.var("sweep_service")], "uri")) + "/ops/sweep"
    token = one(target["oidc_token"])
    assert token["service_account_email"] == ref("google_service_account", "scheduler", "email")
    assert token["audience"] == root.var("push_audience")
    # The sweep endpoint verifies that token against SCHEDULER_SERVICE_ACCOUNT (services/ops/http.py).
    sweeper = module_instances(root, "service")[root.var("sweep_service")]
    assert sweeper["env"]["SCHEDULER_SERVICE_ACCOUNT"] == ref("google_service_account", "scheduler", "email")
    assert sweeper["env"]["PUSH_AUDIENCE"] == token["audience"]
    invoker = instances(root, "google_cloud_run_v2_service_iam_member", "scheduler_invoker")[None]
    assert invoker["name"] == ref("module", "service", [root.var("sweep_service")], "name")
    assert invoker["member"] == f"serviceAccount:{s(ref('google_service_account', 'scheduler', 'email'))}"


def test_alerts_cover_every_subscription(root, topo):
    backlog = instances(root, "google_monitoring_alert_policy", "dead_letter_backlog")[None]
    age = instances(root, "google_monitoring_alert_policy", "oldest_unacked_age")[None]
    assert len(backlog["conditions"]) == len(age["conditions"]) == len(topo["push_subscriptions"])
    backlog_filters = [c["condition_threshold"][0]["filter"] for c in backlog["conditions"]]
    age_filters = [c["condition_threshold"][0]["filter"] for c in age["conditions"]]
    for name in topo["push_subscriptions"]:
        assert any(s(ref("google_pubsub_subscription", "dead_letter_ops", [name], "name")) in f for f in backlog_filters)
        assert any(s(ref("google_pubsub_subscription", "push", [name], "name")) in f for f in age_filters)


def test_every_environment_variable_is_one_the_services_read(root):
    """A typo in a variable name would silently fall back to the code's default."""
    source = "\n".join(p.read_text() for p in (REPO / "services").rglob("*.py"))
    for name, svc in module_instances(root, "service").items():
        for var in list(svc["env"]) + list(svc["secret_env"]):
            assert f'"{var}"' in source or f"'{var}'" in source, f"{name}: no service reads {var}"


def test_checkov_skips_are_justified_in_place(root):
    skips = [c for c in root.comments if c.startswith("#checkov:skip=")]
    assert skips, "expected the documented skips"
    for skip in skips:
        check_id, _, reason = skip.removeprefix("#checkov:skip=").partition(":")
        assert check_id and len(reason.strip()) > 20, f"skip without a real reason: {skip}"


def test_dockerfile_runs_one_service_as_non_root_through_the_front():
    text = (REPO / "Dockerfile").read_text()
    assert "ARG SERVICE" in text
    assert "USER 10001" in text
    assert "/healthz" in text
    # The same entry as the local stack (localcloud/stack.py): gunicorn, nginx in front of ingest.
    assert 'exec python -m services.common.front \\"services.${SERVICE}.app:create_app()\\"' in text
    assert "nginx-light" in text
    assert "pip install -c constraints.txt ." in text
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignored[0] == "*" and "!services/" in ignored and "!schemas/" in ignored


MUTATIONS = {
    "hard-coded ack deadline": (
        "pubsub.tf", "ack_deadline_seconds = each.value.ack_deadline_seconds", "ack_deadline_seconds = 60"),
    "hard-coded push path": (
        "pubsub.tf",
        '"${module.service[each.value.service].uri}${each.value.path}"',
        '"${module.service[each.value.service].uri}/push"'),
    "wrong dead-letter topic": (
        "pubsub.tf",
        "dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id",
        "dead_letter_topic     = google_pubsub_topic.topic[each.value.topic].id"),
    "hard-coded max delivery attempts": (
        "pubsub.tf", "max_delivery_attempts = each.value.max_delivery_attempts", "max_delivery_attempts = 5"),
    "retry backoff swapped": (
        "pubsub.tf",
        'minimum_backoff = "${each.value.retry_policy.minimum_backoff_seconds}s"',
        'minimum_backoff = "${each.value.retry_policy.maximum_backoff_seconds}s"'),
    "topology written twice": (
        "topology.tf",
        "topics             = local.topology.topics",
        'topics             = { "media-ingested" = { message_retention_seconds = 86400, schema = "x" } }'),
    "agent cannot ack": (
        "pubsub.tf",
        'role         = "roles/pubsub.subscriber"\n  member       = local.pubsub_service_agent',
        'role         = "roles/pubsub.viewer"\n  member       = local.pubsub_service_agent'),
    "notification prefix hard-coded": (
        "storage.tf", "object_name_prefix = each.value.object_prefix", 'object_name_prefix = "uploads/"'),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_checks_catch_a_broken_configuration(mutation, tmp_path, topo):
    filename, old, new = MUTATIONS[mutation]
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    (tmp_path / "schemas").mkdir()
    shutil.copy(TOPOLOGY_FILE, tmp_path / "schemas" / "topology.json")
    text = (copy / filename).read_text()
    assert old in text, f"mutation {mutation!r} no longer applies: update it with the configuration"
    (copy / filename).write_text(text.replace(old, new, 1))
    broken = Module.load(copy, REQUIRED_VARS)
    failures = []
    for check in CHECKS:
        try:
            check(broken, topo)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    assert failures, f"no check noticed: {mutation}"


# The segment services' sizing comes from the benches (terraform/variables.tf says which figure):
# the stage process beside its media children (bench bigupload: render's group minus its child)
# and the time-to-ready model of bench/segments_bench.py (MODEL instances serve both fan-outs).
STAGE_PROCESS_BYTES = 400 * 2**20
MODEL_INSTANCES = 50


def _bytes(memory: str) -> int:
    units = {"Mi": 2**20, "Gi": 2**30}
    return int(memory[:-2]) * units[memory[-2:]]


@pytest.mark.parametrize("name", ["analyze", "render"])
def test_segment_services_are_sized_from_the_benches(root, name):
    """Each delivery slot (concurrency) holds one media child at its cap, MEDIA_MEMORY_LIMIT_BYTES
    (an image's bound; a video segment's child measured far below it, whatever the source's size),
    plus the stage's process; one slot per vCPU (one encode per core, the segments bench); both
    fan-outs get the instances the time-to-ready model assumes."""
    from services.common.config import Settings

    svc = module_instances(root, "service")[name]
    limit = Settings.from_env({}).media_memory_limit_bytes
    assert _bytes(svc["memory"]) >= svc["concurrency"] * (limit + STAGE_PROCESS_BYTES), svc["memory"]
    assert svc["concurrency"] == int(svc["cpu"])
    assert svc["max_instances"] >= MODEL_INSTANCES


def test_every_near_duplicate_query_has_its_index_declared(root):
    """services/pipeline/neardup.py's queries (QUERIES): each field it queries keeps the index that query needs."""
    from services.pipeline.neardup import HASHES, QUERIES

    needs = {"array-contains-any": {"array_config": "CONTAINS", "query_scope": "COLLECTION"}}
    declared = {}
    for name in ("near_duplicate_bands",):
        field = instances(root, "google_firestore_field", name)[None]
        declared[(field["collection"], field["field"])] = [{k: v for k, v in i.items() if v is not None}
                                                            for i in field["index_config"][0]["indexes"]]
    for collection, field, op in QUERIES:
        assert needs[op] in declared.get((collection, field), []), (collection, field, op)
    unindexed = instances(root, "google_firestore_field", "near_duplicate_unindexed")
    assert {(f["collection"], f["field"]) for f in unindexed.values()} == {(HASHES, "phash"), (HASHES, "created_at")}
    assert all(f["index_config"] == [{}] for f in unindexed.values())
