"""Validators for incoming values (drop-in names; see :mod:`dasf_geo.data`).

They take ``(cls, value)`` like pydantic class-method validators, so
``field_validator("ds")(validate_dataset)`` works as in demessaging; they can
also be called with the value alone.
"""
