"""The analysis: results stores read into tidy frames, statistics, tables, figures, clustering, the explorer.

It never trains; it imports the engine (``functions.engine``) and nothing from ``functions.related``.
"""
