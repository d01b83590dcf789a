"""Layer 2, data: the type registry.

For each supported type (``xr.Dataset``, ``xr.DataArray``, ``pd.DataFrame``,
``np.ndarray``, and users' own registered types) it knows how to validate an
incoming value, how to serialize an outgoing one and which JSON schema
describes it (with ``contentEncoding``/``contentMediaType`` and
``x-dasf-type``). CF-convention, ``crs`` and Demap checks live here too.

Format rule for Dataset/DataArray replies (``DataOptions.format="auto"``):
NetCDF3 classic (what demessaging and Demap read) unless compression was
requested, a variable has dtype int64 or unsigned, or NetCDF3 encoding fails
for a value — then NetCDF4. See :mod:`dasf_geo.data._ncformat`.

Modules: ``_registry`` (the generic registry; ``_schema`` decodes by
schema), ``_builtins`` and ``_types`` (its entries and their JSON forms),
``_binary`` (the binary form of xarray values: media types, binary replies
and parts), ``_netcdf``/``_ncformat``/``_ncwrite``/``_nc3writer`` (NetCDF
reading, the format rule, writing), ``_cfrules`` and ``_checks`` (the CF
rules and their table), ``_crs``, ``_demap``, ``_findings`` (their reports).
"""

from __future__ import annotations

from dasf_geo.data._arrays import decode_ndarray, encode_ndarray, to_ndarray
from dasf_geo.data._binary import (
    BINARY_MEDIA_TYPES,
    BinaryPart,
    OutgoingPart,
    PartWriter,
    open_reply,
    read_reply,
    reply_media_type,
    request_parts,
    resolve_placeholder,
    write_reply,
    write_reply_file,
)

# importing registers the built-in entries
from dasf_geo.data._builtins import (
    decode_base64_xarray,
    encode_base64_xarray,
    to_dataarray,
    to_dataset,
)
from dasf_geo.data._checks import (
    CF_RULES,
    CFConventionWarning,
    CRSWarning,
    DataWarning,
    Finding,
    cf_findings,
    check_cf,
    check_crs,
    check_demap,
    coerce_demap,
    standard_name_table,
)
from dasf_geo.data._crs import crs_findings
from dasf_geo.data._findings import (
    FindingReport,
    attach_reports,
    collect_findings,
    decode_reports,
    encode_reports,
    reports_of,
    warn_reports,
)
from dasf_geo.data._frames import decode_dataframe, encode_dataframe, to_dataframe
from dasf_geo.data._netcdf import (
    LAZY_THRESHOLD,
    choose_format,
    detect_format,
    open_netcdf_lazily,
    read_dataarray,
    read_netcdf,
    write_netcdf,
)
from dasf_geo.data._options import DataOptions
from dasf_geo.data._registry import (
    COMPRESSION_CONTEXT,
    PARTS_CONTEXT,
    SCHEMA_TYPE_KEY,
    RegistryType,
    TypeEntry,
    get_entry,
    original_errors,
    register,
    register_reference,
    registered_types,
    resolve_annotation,
    unregister,
)
from dasf_geo.data._schema import decode_by_schema
from dasf_geo.data._types import (
    encode_datatree,
    encode_series,
    to_datatree,
    to_series,
)

__all__ = [
    "BINARY_MEDIA_TYPES",
    "CF_RULES",
    "COMPRESSION_CONTEXT",
    "LAZY_THRESHOLD",
    "PARTS_CONTEXT",
    "SCHEMA_TYPE_KEY",
    "BinaryPart",
    "CFConventionWarning",
    "CRSWarning",
    "DataOptions",
    "DataWarning",
    "Finding",
    "FindingReport",
    "OutgoingPart",
    "PartWriter",
    "RegistryType",
    "TypeEntry",
    "attach_reports",
    "cf_findings",
    "check_cf",
    "check_crs",
    "check_demap",
    "choose_format",
    "coerce_demap",
    "collect_findings",
    "crs_findings",
    "decode_base64_xarray",
    "decode_by_schema",
    "decode_dataframe",
    "decode_ndarray",
    "decode_reports",
    "detect_format",
    "encode_base64_xarray",
    "encode_dataframe",
    "encode_datatree",
    "encode_ndarray",
    "encode_reports",
    "encode_series",
    "get_entry",
    "open_netcdf_lazily",
    "open_reply",
    "original_errors",
    "read_dataarray",
    "read_netcdf",
    "read_reply",
    "register",
    "register_reference",
    "registered_types",
    "reply_media_type",
    "reports_of",
    "request_parts",
    "resolve_annotation",
    "resolve_placeholder",
    "standard_name_table",
    "to_dataarray",
    "to_dataframe",
    "to_dataset",
    "to_datatree",
    "to_ndarray",
    "to_series",
    "unregister",
    "warn_reports",
    "write_netcdf",
    "write_reply",
    "write_reply_file",
]
