"""The hook the mqtt plugin offers other plugins: publishing on the bridge's connection.

The host adds these specs when the plugin loads (its `hookspecs` attribute), before any
plugin registers, so a plugin may implement or call them whatever the loading order.
"""

from __future__ import annotations

from sophonfog_bridge import hookspec


@hookspec
def mqtt_publish(topic, payload, qos, retain, bridge):
    """Publish on the bridge's MQTT connection; True once sent (QoS 0) or acknowledged (1, 2)."""
