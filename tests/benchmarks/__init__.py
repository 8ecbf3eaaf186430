"""Engine benchmarks: figures for the performance budget (docs/architecture.md, the engine contract), not timed assertions.

Run with ``make bench`` (``python -m tests.benchmarks --help`` lists the options). Nothing here is
collected by pytest: the figures depend on the machine, so they are reported, never asserted.
"""
