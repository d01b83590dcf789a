"""Serializer for numpy arrays (dtype + shape + base64 little-endian bytes)."""

from __future__ import annotations

from dasf_geo.data._arrays import encode_ndarray

__all__ = ["encode_ndarray"]
