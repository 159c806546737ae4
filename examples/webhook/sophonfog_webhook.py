"""Example sophonfog-bridge plugin: POST a compact JSON of each face event to a URL.

While the endpoint is unreachable or answers 5xx / 429 the plugin raises `RetryLater`, so
the event stays in the bridge's spool and is posted again later, in order; nothing is
lost while the receiver is down. A 4xx answer means the receiver will never take this
payload: it is logged and skipped. Delivery is at-least-once, so every request carries
the event id (`X-Sophonfog-Event-Id`) for the receiver to dedupe on.

With `secret` set, `X-Sophonfog-Signature: sha256=<hex>` is the HMAC-SHA256 of the raw
body under that secret, like GitHub's webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from typing import Any

import voluptuous as vol

from sophonfog_bridge import Event, EventKind, PersonType, RetryLater, cv, hookimpl

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Sophonfog-Signature"
EVENT_ID_HEADER = "X-Sophonfog-Event-Id"
RETRY_STATUSES = {408, 425, 429}


def HeaderName(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in " :\r\n"):
        raise vol.Invalid(f"not an HTTP header name: {value!r}")
    return text


CONFIG_SCHEMA = vol.Schema(
    {
        # Without a URL the plugin stays idle: installing it must not break a bridge.
        vol.Optional("url", default=None): vol.Any(None, cv.HttpUrl),
        # Empty: every person type.
        vol.Optional("person_types", default=list): [vol.Coerce(PersonType)],
        # History events are late copies; most automations want only real-time ones.
        vol.Optional("include_history", default=False): bool,
        vol.Optional("secret", default=None): vol.Any(None, vol.All(str, vol.Length(min=8))),
        vol.Optional("headers", default=dict): {HeaderName: str},
        vol.Optional("timeout_s", default=5.0): cv.Seconds(0.1),
        vol.Optional("retry_s", default=5.0): cv.Seconds(0.05),
    }
)


def payload_for(event: Event, bridge_id: str) -> dict[str, Any]:
    """The compact JSON a receiver gets: who, where, when; no images."""
    return {
        "event_id": event.event_id,
        "bridge_id": bridge_id,
        "kind": event.kind.value,
        "timestamp": event.timestamp.isoformat(),
        "identity_id": event.identity_id,
        "identity_name": event.identity_name,
        "group_name": event.group_name,
        "person_type": event.person_type.value,
        "score": event.score,
        "device": event.device,
        "device_type": event.device_type.value,
        "box": event.box,
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookPlugin:
    """Entry point `webhook`."""

    @hookimpl
    def config_schema(self) -> vol.Schema:
        return CONFIG_SCHEMA

    @hookimpl
    def startup(self, bridge: Any, config: dict[str, Any]) -> None:
        self.config = config
        self.bridge_id = bridge.bridge_id
        self.person_types = set(config["person_types"])
        self.sent = 0
        self.skipped = 0
        self.last_error: str | None = None
        if not config["url"]:
            log.info("webhook: no plugins.webhook.url configured; posting nothing")

    def wanted(self, event: Event) -> bool:
        if not self.config["url"]:
            return False
        if self.person_types and event.person_type not in self.person_types:
            return False
        return event.kind is EventKind.REALTIME or self.config["include_history"]

    @hookimpl
    def handle_event(self, event: Event) -> None:
        if not self.wanted(event):
            return
        body = json.dumps(payload_for(event, self.bridge_id), ensure_ascii=False).encode()
        headers = {
            **self.config["headers"],
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
        }
        if self.config["secret"]:
            headers[SIGNATURE_HEADER] = sign(self.config["secret"], body)
        request = urllib.request.Request(
            self.config["url"], data=body, method="POST", headers=headers
        )
        retry = self.config["retry_s"]
        try:
            with urllib.request.urlopen(request, timeout=self.config["timeout_s"]) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            if err.code >= 500 or err.code in RETRY_STATUSES:
                self.last_error = f"HTTP {err.code}"
                raise RetryLater(f"webhook answered {err.code}", after=retry) from None
            self.skipped += 1
            self.last_error = f"HTTP {err.code} (event {event.short_id} skipped)"
            log.warning(
                "webhook: %s refused event %s with %s; not retried",
                self.config["url"],
                event.short_id,
                err.code,
            )
            return
        except (OSError, TimeoutError) as err:
            self.last_error = f"{type(err).__name__}: {err}"
            raise RetryLater(f"webhook unreachable: {err}", after=retry) from None
        self.sent += 1
        self.last_error = None

    @hookimpl
    def plugin_health(self) -> dict[str, Any]:
        return {
            "configured": bool(self.config["url"]),
            "sent": self.sent,
            "refused": self.skipped,
            "webhook_error": self.last_error,
        }
