"""Serializers for outgoing values (drop-in names; see :mod:`dasf_geo.data`).

- :func:`dasf_geo.serializers.xarray.encode_xarray`: Dataset/DataArray →
  base64 NetCDF text (as ``demessaging.serializers.xarray.encode_xarray``);
- :func:`dasf_geo.serializers.pandas.encode_dataframe`: DataFrame → typed
  columnar JSON object;
- :func:`dasf_geo.serializers.numpy.encode_ndarray`: ndarray → dtype, shape
  and base64 little-endian bytes.
"""
