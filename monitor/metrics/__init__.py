"""Prometheus metrics: the registry and the per-site renderer."""
