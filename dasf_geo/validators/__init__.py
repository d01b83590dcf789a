"""Validators for incoming values (see :mod:`dasf_geo.data`)."""
