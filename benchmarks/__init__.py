"""Benchmarks: evstore side by side with eventsourcing 9.5.6 and the raw database drivers.

Run ``python -m benchmarks --help``; ``make bench`` runs the full suite, ``make bench-quick``
runs every workload at a tenth of its size (the smoke test CI runs). See docs/benchmarks.md.
"""
