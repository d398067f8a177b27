"""Launchers for the real servers Warroom runs on: Kafka (Tansu or Apache),
PostgreSQL, Prometheus and Alertmanager, as child processes on free ports.

Used by ``warroom up`` and by the test suite. Each ``start_*`` returns only
once its server answers, and every child dies with the thread that started it.
"""

from .kafka import (
    KAFKA_VERSION,
    KafkaServer,
    default_cache_dir,
    ensure_kafka_jars,
    kafka_metadata_ready,
    start_apache_kafka,
    start_tansu,
)
from .postgres import PostgresServer, start_postgres
from .process import HttpServer, Server, ServerError, ServerUnavailable, free_port
from .prometheus import backfill_openmetrics, start_alertmanager, start_prometheus

__all__ = [
    "KAFKA_VERSION",
    "backfill_openmetrics",
    "HttpServer",
    "KafkaServer",
    "PostgresServer",
    "Server",
    "ServerError",
    "ServerUnavailable",
    "default_cache_dir",
    "ensure_kafka_jars",
    "free_port",
    "kafka_metadata_ready",
    "start_alertmanager",
    "start_apache_kafka",
    "start_postgres",
    "start_prometheus",
    "start_tansu",
]
