"""Helpers for the tests, benchmarks and interoperability checks of dasf_geo.

Not used by the library itself (the layering test keeps it that way):
:mod:`dasf_geo.testing.processes` starts and stops the child processes
(brokers, backends, callers, peers) that end-to-end tests, benchmarks and
the interop harness run, so that all three behave the same;
:mod:`dasf_geo.testing.calls` starts calls whose requests the broker
stored, for the tests and benchmarks that kill it.
"""
