"""wrkr's RabbitMQ backend: ``Wrkr.from_url("amqp://guest:guest@127.0.0.1:5672/")``."""

try:
    import aiormq  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'wrkr_rabbitmq needs the aiormq client: pip install "wrkr[rabbitmq]"'
    ) from exc

from wrkr_rabbitmq._backend import RabbitMQBackend

__all__ = ["RabbitMQBackend"]
