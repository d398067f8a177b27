"""What only the test suite and the benchmarks use; not part of the product or its wheel.

Apache Kafka from Maven jars (`apache_kafka`), and a synthetic but valid event log
(`synthetic`) for the projector's and replay's tests and benches. What Warroom itself
runs (Tansu, the embedded PostgreSQL, and Prometheus/Alertmanager for `warroom up
--demo`) stays in `warroom.servers`. May import anything of ours; nothing of the product imports it.
"""

from .apache_kafka import KAFKA_VERSION, default_cache_dir, ensure_kafka_jars, java_binary, start_apache_kafka

__all__ = ["KAFKA_VERSION", "default_cache_dir", "ensure_kafka_jars", "java_binary", "start_apache_kafka"]
