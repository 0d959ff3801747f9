"""Benchmarking harness for fine-grained LLM alignment.

The Python API (``bench.train``, ``bench.run``, ``bench.judge``) mirrors the CLI; see ``bench.api``.
"""

from .api import judge, run, train

__version__ = "0.1.0"
__all__ = ["judge", "run", "train"]
