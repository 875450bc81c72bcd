#!/usr/bin/env python3
"""Verifies one Juhe delivery with the off-the-shelf `standardwebhooks` package (PyPI).

Reads a JSON object from stdin: {"secret": "whsec_…", "headers": {"webhook-id": …,
"webhook-timestamp": …, "webhook-signature": …}, "body": "<the raw body>"}. Prints the
verified payload's eventId and exits 0, or prints why and exits 1. Used by the test suite
(crates/juhe/tests/it/events.rs) to prove receivers can verify deliveries unchanged.
"""
import json
import sys

from standardwebhooks import Webhook

msg = json.load(sys.stdin)
try:
    payload = Webhook(msg["secret"]).verify(msg["body"], msg["headers"])
except Exception as e:  # the library raises WebhookVerificationError
    print(f"not verified: {e}")
    sys.exit(1)
print(payload["eventId"])
