"""The ``instasent-async`` command line (also ``python -m instasent_async``).

``main.py`` holds the parser and the dispatch; ``output.py`` the progress display, the
report and error text and Ctrl-C; one module per command (``whoami``, ``ingest``,
``serve_fake``, ``demo``); ``_files.py`` reads the ingest files. The entry point is
:func:`instasent_async.cli.main.main`.
"""
