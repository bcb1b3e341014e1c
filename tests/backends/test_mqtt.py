"""MQTTBackend passes the conformance suite against the local Mosquitto.

Each test gets its own namespace (a unique `prefix`); its records are deleted and its
sessions ended afterwards. Tests of capabilities MQTT declares it lacks are skipped.
"""

from __future__ import annotations

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite, Names
from tests.conftest import MQTT_URL
from wrkr.backend import Backend
from wrkr_mqtt import MQTTBackend


@pytest.mark.mqtt
class TestMQTTBackend(BackendSuite):
    """Every conformance test of the capabilities MQTTBackend declares."""

    @pytest.fixture
    def backend_factory(self, mqtt_prefix: str) -> BackendFactory:
        """Return a factory of backends, each with its own connections, on one namespace."""
        return lambda: MQTTBackend(MQTT_URL, prefix=mqtt_prefix, session_expiry=600)

    @pytest.mark.xfail(strict=True, reason=(
        "MQTT keeps a queue's messages per session: what a stopped consumer received but "
        "did not hand out stays in its session until that session is taken again, so "
        "another process's consumer (on another session) cannot claim it meanwhile"))
    async def test_closing_deliveries_releases_what_it_had_not_yielded(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        """Known to fail on MQTT (see the reason); strict, so a fix shows."""
        await super().test_closing_deliveries_releases_what_it_had_not_yielded(
            backend, backend_factory, names)
