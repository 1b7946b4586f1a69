"""Polyseek: multilingual hybrid search served as an Elasticsearch-compatible REST service.

This package is the product's command line (:mod:`polyseek.cli`); the query service is ``service``,
the ingest queue, encoders, engine adapter and settings are ``pipelines``.
"""
