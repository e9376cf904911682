"""The engine: configuration, datasets, networks, transfer conditions, training, results stores, the Study.

It never plots and never imports ``functions.analysis`` or ``functions.related``. Its light modules
(``errors``, ``coerce``, ``datasets``, ``architectures``, ``conditions``, ``config``, ``schema``, ``store``)
import neither torch nor pandas, so a config can be read and checked without them.
"""
