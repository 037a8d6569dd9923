"""Benchmarks B1-B7 of docs/performance anchors: the operator measured against a bare client.

Run ``.venv/bin/python benchmarks/run.py --help``; see ``benchmarks/README.md``.
"""
