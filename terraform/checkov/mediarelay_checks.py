"""checkov has no built-in check for Cloud Run *v2* IAM members nor for push subscriptions;
these cover what this configuration relies on. Run by `make test-infra`."""
from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers")


def _first(conf: dict[str, Any], key: str) -> Any:
    value = conf.get(key)
    return value[0] if isinstance(value, list) and value else value


def _block(conf: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = _first(conf, key)
    return value if isinstance(value, dict) else None


class CloudRunV2NotPublic(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure Cloud Run v2 services are not invokable by allUsers / allAuthenticatedUsers",
            id="CKV_MR_1",
            categories=(CheckCategories.IAM,),
            supported_resources=("google_cloud_run_v2_service_iam_member", "google_cloud_run_v2_service_iam_binding"),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        if self.entity_type.endswith("_iam_member"):
            members = [_first(conf, "member")]
        else:
            members = _first(conf, "members") or []
        return CheckResult.FAILED if any(m in PUBLIC_PRINCIPALS for m in members) else CheckResult.PASSED


class PushSubscriptionAuthenticated(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure Pub/Sub push subscriptions send an OIDC token of a dedicated service account",
            id="CKV_MR_2",
            categories=(CheckCategories.IAM,),
            supported_resources=("google_pubsub_subscription",),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        push = _block(conf, "push_config")
        if push is None:
            return CheckResult.PASSED  # pull subscription
        token = _block(push, "oidc_token")
        if token is None or not _first(token, "service_account_email") or not _first(token, "audience"):
            return CheckResult.FAILED
        return CheckResult.PASSED


class PushSubscriptionDeadLetters(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure Pub/Sub push subscriptions have a dead-letter policy and never expire",
            id="CKV_MR_3",
            categories=(CheckCategories.GENERAL_SECURITY,),
            supported_resources=("google_pubsub_subscription",),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        expiration = _block(conf, "expiration_policy")
        if expiration is None or _first(expiration, "ttl") != "":
            return CheckResult.FAILED
        if _block(conf, "push_config") is None:
            return CheckResult.PASSED
        dead_letter = _block(conf, "dead_letter_policy")
        if dead_letter is None or not _first(dead_letter, "dead_letter_topic"):
            return CheckResult.FAILED
        if not _first(dead_letter, "max_delivery_attempts"):
            return CheckResult.FAILED
        return CheckResult.PASSED


class CloudRunV2OwnServiceAccount(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure Cloud Run v2 services run as a dedicated service account, not the Compute default",
            id="CKV_MR_4",
            categories=(CheckCategories.IAM,),
            supported_resources=("google_cloud_run_v2_service",),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        template = _block(conf, "template")
        account = _first(template, "service_account") if template else None
        if not account or "-compute@developer.gserviceaccount.com" in str(account):
            return CheckResult.FAILED
        return CheckResult.PASSED


cloud_run_v2_not_public = CloudRunV2NotPublic()
push_subscription_authenticated = PushSubscriptionAuthenticated()
push_subscription_dead_letters = PushSubscriptionDeadLetters()
cloud_run_v2_own_service_account = CloudRunV2OwnServiceAccount()
