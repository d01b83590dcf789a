"""Layer 7, command line.

- ``dasf-geo …`` (:mod:`dasf_geo.cli.tool`): ``broker``, ``serve``, ``call``.
- the per-module command line that :func:`dasf_geo.main` builds for a backend
  module (:mod:`dasf_geo.cli.module`): ``listen``, ``schema``, ``generate``…
"""
