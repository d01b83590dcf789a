"""Serializers for outgoing values (see :mod:`dasf_geo.data`)."""
