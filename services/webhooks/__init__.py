"""Webhooks: clients' endpoints, Standard Webhooks signatures, the SSRF guard, delivery."""
