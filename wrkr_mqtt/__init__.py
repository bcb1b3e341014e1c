"""wrkr's MQTT backend: ``Wrkr.from_url("mqtt://127.0.0.1:1883")``."""

try:
    import paho.mqtt.client  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('wrkr_mqtt needs the paho-mqtt client: pip install "wrkr[mqtt]"') from exc

from wrkr_mqtt._backend import MQTTBackend

__all__ = ["MQTTBackend"]
