"""Benchmarking harness for fine-grained LLM alignment."""

__version__ = "0.1.0"
