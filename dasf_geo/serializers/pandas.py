"""Serializer for pandas DataFrames (typed columnar JSON, exact round trip)."""

from __future__ import annotations

from dasf_geo.data._frames import encode_dataframe

__all__ = ["encode_dataframe"]
