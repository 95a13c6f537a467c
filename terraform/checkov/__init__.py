"""Project checks for checkov (loaded with --external-checks-dir): the resources checkov's
own catalogue does not cover (Cloud Run v2 IAM, Pub/Sub push authentication)."""
