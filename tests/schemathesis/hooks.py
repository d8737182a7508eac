"""Schemathesis hooks for tests/schemathesis/run.sh (loaded through SCHEMATHESIS_HOOKS).

Right before each request:
- long-poll waits are taken out: a `wait_seconds` query parameter that the server would accept
  is dropped and a claim's numeric `wait_seconds` becomes 0, so no request is held for up to a minute
  (malformed values stay, and must still be refused);
- every URL the server would accept as a push target (`webhook_url`, `callback_url`, the
  `payload.url` of agent://internal/notify) is pointed at a closed loopback port, so no
  generated host is ever resolved or contacted;
- the run's own admin key is never revoked (its id comes in AXME_ST_KEY_ID; a request to revoke
  it is sent for a random key id instead), or every later case would be a 401;
- an `Idempotency-Key` gets a hash of the body appended: generation reuses short keys (`0`,
  `a`, ...) across different bodies, and each reuse would be a 409 that keeps the case from
  reaching the handler; the same key with the same body still replays.
"""

import hashlib
import json
import os
import re
import uuid
from collections.abc import MutableMapping

import schemathesis

# Nothing listens on the discard port: an attempt is refused at once and retried on the
# server's schedule, all on the loopback interface.
LOOPBACK_TARGET = "http://127.0.0.1:9/schemathesis"
URL_FIELDS = ("webhook_url", "callback_url")
KEY_MAX = 255
OWN_KEY_ID = os.environ.get("AXME_ST_KEY_ID", "")


def _is_url(value):
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def _is_wait(value):
    return type(value) is int or (isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value))


def _is_number(value):
    # The server takes an integral JSON float (`52.0`) as the integer it names, so a float
    # has to go too, or the request is held for up to a minute.
    return type(value) in (int, float)


@schemathesis.hook
def before_call(context, case, kwargs):
    if isinstance(case.query, MutableMapping) and _is_wait(case.query.get("wait_seconds")):
        del case.query["wait_seconds"]
    body = case.body
    if isinstance(body, MutableMapping):
        if _is_number(body.get("wait_seconds")):
            body["wait_seconds"] = 0
        for field in URL_FIELDS:
            if _is_url(body.get(field)):
                body[field] = LOOPBACK_TARGET
        payload = body.get("payload")
        if isinstance(payload, MutableMapping) and _is_url(payload.get("url")):
            payload["url"] = LOOPBACK_TARGET
    params = case.path_parameters
    if OWN_KEY_ID and isinstance(params, MutableMapping) and params.get("key_id") == OWN_KEY_ID:
        params["key_id"] = str(uuid.uuid4())
    headers = case.headers if isinstance(case.headers, MutableMapping) else {}
    for name, key in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(key, str) and 0 < len(key) <= KEY_MAX:
            sent = json.dumps(body, sort_keys=True, default=str).encode()
            digest = hashlib.sha256(sent).hexdigest()[:16]
            headers[name] = f"{key[: KEY_MAX - 17]}-{digest}"
