"""The chaos scenario: a chain of job runs under SIGKILL and PostgreSQL restarts, its effects counted.

``project`` configures it, ``faults`` deals the faults, ``observer`` reads what the engine says,
``scenario`` puts them together; ``python -m tests.chaos`` is the soak, ``tests/acceptance/test_chaos.py``
the bounded test.
"""
