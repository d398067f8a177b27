"""Launchers for the servers Warroom runs by itself: Tansu, PostgreSQL, and Prometheus
and Alertmanager (``warroom up --demo``), as child processes on free ports.

Used by ``warroom up``, and by the tests and benches (whose own servers are in
``testing``). Each ``start_*`` returns only once its server answers, and every child
dies with the thread that started it.
"""

from .kafka import (
    KafkaServer,
    kafka_metadata_ready,
    start_tansu,
)
from .postgres import PostgresServer, start_postgres
from .process import HttpServer, Server, ServerError, ServerUnavailable, free_port
from .prometheus import backfill_openmetrics, start_alertmanager, start_prometheus

__all__ = [
    "backfill_openmetrics",
    "HttpServer",
    "KafkaServer",
    "PostgresServer",
    "Server",
    "ServerError",
    "ServerUnavailable",
    "free_port",
    "kafka_metadata_ready",
    "start_alertmanager",
    "start_postgres",
    "start_prometheus",
    "start_tansu",
]
