"""Engine benchmarks: figures for the performance budget (the engine contract of docs/architecture.md),
not timed assertions.

Run with ``make bench`` (``python -m tests.benchmarks --help`` lists the options). Nothing here is
collected by pytest: the figures depend on the machine, so they are reported, never asserted.
"""
