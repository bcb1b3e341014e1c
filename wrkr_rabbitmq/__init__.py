"""wrkr's RabbitMQ backend: ``Wrkr.from_url("amqp://guest:guest@127.0.0.1:5672/")``."""

try:
    import pika  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'wrkr_rabbitmq needs the pika client: pip install "wrkr[rabbitmq]"'
    ) from exc

from wrkr_rabbitmq._backend import RabbitMQBackend

__all__ = ["RabbitMQBackend"]
