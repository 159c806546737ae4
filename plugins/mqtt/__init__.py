"""Bundled plugin `mqtt`: MQTT topics and Home Assistant discovery (see docs/mqtt.md)."""

from .plugin import MqttPlugin

__all__ = ["MqttPlugin"]
