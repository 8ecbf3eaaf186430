"""The shapes releaseflow speaks on the wire: JSON of runs, nodes, events, projects, records and
notification subscriptions.

They live here, between the interfaces (``cli``, ``api``, ``web``) and the engine, so that every
interface prints the same document without importing another interface, and the engine's read model
(``releaseflow.engine.queries``) stays plain data with ``datetime`` values.
"""
