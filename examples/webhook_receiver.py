"""A webhook receiver for mediarelay events: verifies the Standard Webhooks signature and the
timestamp window, drops duplicate deliveries by their id, answers fast.

    pip install flask standardwebhooks
    MEDIARELAY_WEBHOOK_SECRET=whsec_... flask --app examples/webhook_receiver run --port 9000

The secret is the one `POST /v1/webhooks` (or `mediarelay webhooks add`) showed once. During a
rotation mediarelay signs with the old and the new secret; list both, comma-separated, until
the old one expires.
"""
from __future__ import annotations

import os
from collections import OrderedDict

from flask import Flask, request
from standardwebhooks import Webhook, WebhookVerificationError

app = Flask(__name__)
verifiers = [Webhook(s.strip()) for s in os.environ["MEDIARELAY_WEBHOOK_SECRET"].split(",") if s.strip()]
seen: OrderedDict[str, None] = OrderedDict()  # recent webhook-ids; use a shared store with more than one process
SEEN_MAX = 10_000


@app.post("/")
def receive():
    body = request.get_data()
    event = None
    for verifier in verifiers:
        try:  # checks the signature and that webhook-timestamp is within 5 minutes
            event = verifier.verify(body, dict(request.headers))
            break
        except WebhookVerificationError:
            continue
    if event is None:
        return {"error": "bad signature or stale timestamp"}, 401
    delivery_id = request.headers["webhook-id"]  # the event id: the same on every retry
    if delivery_id in seen:
        return "", 204  # a retry of something already handled
    seen[delivery_id] = None
    if len(seen) > SEEN_MAX:
        seen.popitem(last=False)
    # Hand the work off (a queue, a task) and answer within a few seconds: a slow answer is a
    # failed attempt, and it will be delivered again.
    app.logger.info("job %s %s", event["job_id"], event["status"])
    return "", 204
