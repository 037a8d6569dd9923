"""Benchmarks B1-B7 and CFG: the operator measured against a bare client in the same run.

Run ``.venv/bin/python benchmarks/run.py --help``; see ``benchmarks/README.md``.
"""
