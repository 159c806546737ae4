"""A plugin whose every delivery fails with a message that quotes the event, as a careless
third-party plugin's would (a webhook that cannot post a name)."""

from __future__ import annotations

from sophonfog_bridge import hookimpl


class QuotingFailure:
    @hookimpl
    def handle_event(self, event) -> None:
        raise ValueError(f"cannot post {event.identity_name} ({event.identity_id})")
