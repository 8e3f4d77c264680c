"""The package version, in a module of its own.

Modules that record the version (index manifests, the HTTP service, ``--version``) import it from
here rather than from the package ``__init__``, which lazily imports :mod:`fieldtune.search`: importing
``fieldtune`` itself from there would tie every such module into a cycle with the package.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
