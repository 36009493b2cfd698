"""Verifies recorded webhook deliveries with the Standard Webhooks reference implementation
(the `standardwebhooks` package), independently of our Rust signing code.

Usage: verify_webhooks.py RECORDED.json
RECORDED.json: {"secrets": ["whsec_…", …], "deliveries": [{"headers": {…}, "body": "…",
"expect": ["whsec_…", …]}]}: each delivery must verify with every secret in its `expect`, and
fail with every other secret of `secrets`. Prints one line per delivery; exits 1 on any
mismatch.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verifies(secret, headers, body):
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def main(path):
    with open(path) as f:
        recorded = json.load(f)
    bad = 0
    for i, delivery in enumerate(recorded["deliveries"]):
        for secret in recorded["secrets"]:
            expected = secret in delivery["expect"]
            got = verifies(secret, delivery["headers"], delivery["body"])
            if got != expected:
                bad += 1
                print(f"delivery {i} ({delivery['headers'].get('webhook-id')}): "
                      f"secret {secret[:10]}… verifies={got}, expected {expected}")
        print(f"delivery {i}: {delivery['headers'].get('webhook-id')} checked")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
