"""The web interface: server-rendered pages (Jinja2, htmx, server-sent events) over the engine.

``web_app`` builds the sub-application that ``api/app.py`` mounts at ``/web``. The pages call the
engine's queries and commands directly; templates only lay out what those return. Every asset (htmx,
the run view's live script, the style sheet) is served from ``web/static``: the pages work offline.
"""
