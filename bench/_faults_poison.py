"""Poison input for the fault harness: malformed items written straight into each store.

Each injector copies the queue's ``template`` item (published by the harness) with a
new id and a payload no wrkr publisher would write: bytes that are not JSON, and JSON
that is not an object. On RabbitMQ, where there is no table, it publishes a foreign
message straight to the queue: a body that is not JSON and one with no wrkr headers.
Each also puts in one good item (tid ``history``) whose error history is not what wrkr
writes (a string where a list of records belongs): its queue must still be claimable,
and the item handled. Each returns how many items it put in to be parked as failed.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wrkr import Wrkr

BAD_PAYLOADS = (b"not json at all", b"[1, 2, 3]")
BAD_HISTORY = "not a list of error records"


async def inject(app: Wrkr, url: str, queue: str) -> int:
    """Put the malformed items of `url`'s backend into `queue`; return how many."""
    scheme = urlsplit(url).scheme
    if scheme.startswith("postgres"):
        return _postgres(url, queue)
    if scheme == "sqlite":
        return _sqlite(url, queue)
    if scheme == "mongodb":
        return await _mongodb(url, queue)
    return await _rabbitmq(url, queue)


def app_event() -> str:
    from bench._faults_roles import EVENT

    return EVENT


def _postgres(url: str, queue: str) -> int:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    schema = parse_qs(urlsplit(url).query).get("schema", ["public"])[0]
    with psycopg.connect(url.split("?")[0], autocommit=True) as connection:
        for payload in BAD_PAYLOADS:
            connection.execute(sql.SQL(
                "INSERT INTO {items} (id, queue, name, tid, payload, due, created) "
                "SELECT gen_random_uuid(), queue, name, 'poison', %s, due, created "
                "FROM {items} WHERE queue = %s AND tid = 'template'").format(
                    items=sql.Identifier(schema, "items")), [payload, queue])
        connection.execute(sql.SQL(
            "INSERT INTO {items} (id, queue, name, tid, payload, due, created, errors) "
            "SELECT gen_random_uuid(), queue, name, 'history', payload, due, created, %s "
            "FROM {items} WHERE queue = %s AND tid = 'template'").format(
                items=sql.Identifier(schema, "items")), [Jsonb(BAD_HISTORY), queue])
    return len(BAD_PAYLOADS)


def _sqlite(url: str, queue: str) -> int:
    import sqlite3

    path = urlsplit(url).path.removeprefix("/")
    with sqlite3.connect(path, timeout=30) as connection:
        for payload in BAD_PAYLOADS:
            connection.execute(
                "INSERT INTO wrkr_items (id, queue, name, tid, payload, due, created, updated) "
                "SELECT ?, queue, name, 'poison', ?, due, created, updated FROM wrkr_items "
                "WHERE queue = ? AND tid = 'template'", [secrets.token_hex(16), payload, queue])
        connection.execute(
            "INSERT INTO wrkr_items (id, queue, name, tid, payload, due, created, updated, "
            "errors) SELECT ?, queue, name, 'history', payload, due, created, updated, ? "
            "FROM wrkr_items WHERE queue = ? AND tid = 'template'",
            [secrets.token_hex(16), BAD_HISTORY, queue])
    return len(BAD_PAYLOADS)


async def _mongodb(url: str, queue: str) -> int:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        items = client.get_default_database()["wrkr_items"]
        template = await items.find_one({"queue": queue, "tid": "template"})
        assert template is not None, "the template item was not stored"
        for payload in BAD_PAYLOADS:
            await items.insert_one({**template, "_id": secrets.token_hex(16), "tid": "poison",
                                    "payload": payload, "seq": template["seq"] + 1})
        await items.insert_one({**template, "_id": secrets.token_hex(16), "tid": "history",
                                "errors": BAD_HISTORY, "seq": template["seq"] + 1})
    finally:
        await client.close()
    return len(BAD_PAYLOADS)


async def _rabbitmq(url: str, queue: str) -> int:
    import time

    import orjson
    import pika  # type: ignore[import-untyped]

    from wrkr_rabbitmq._client import RabbitMQConnection

    prefix = parse_qs(urlsplit(url).query).get("prefix", ["wrkr"])[0]
    connection = await RabbitMQConnection.connect(url.split("?")[0])
    try:
        channel = await connection.channel()
        for body in (b"not json at all", b'{"no": "headers"}'):
            await channel.publish(body, exchange="", routing_key=f"{prefix}.q.{queue}",
                                  properties=pika.BasicProperties(delivery_mode=2))
        now = int(time.time() * 1_000_000)
        header = orjson.dumps({"id": secrets.token_hex(16), "name": app_event(), "tid": "history",
                               "due": now, "created": now, "attempts": 0,
                               "errors": BAD_HISTORY, "to": ""}).decode()
        await channel.publish(b"{}", exchange="", routing_key=f"{prefix}.q.{queue}",
                              properties=pika.BasicProperties(delivery_mode=2,
                                                              headers={"x-wrkr": header}))
    finally:
        await connection.close()
    return 2
