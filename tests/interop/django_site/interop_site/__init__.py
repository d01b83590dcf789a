"""A minimal Django site serving dasf-broker-django for the interop tests.

The tests copy this directory to a temporary one, migrate it (SQLite) and
serve it with daphne on 127.0.0.1; nothing here is meant for production.
"""
