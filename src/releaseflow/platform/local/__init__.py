"""The ``local`` driver: builds of git commits, processes and PostgreSQL databases on this host.

``driver.LocalDriver`` is the facade the engine registers; ``builds``, ``services``, ``jobs`` and
``postgres`` each manage one kind of thing under the driver's root folder, as JSON state files
(``state_files``). ``specs`` parses the spec of every resource kind; ``answers`` shapes what the
managers report into driver answers.
"""
