"""Test harness: real servers for the suite, a controllable Prometheus
exporter, and deadline-based waiting. Import as ``harness.<module>``."""
