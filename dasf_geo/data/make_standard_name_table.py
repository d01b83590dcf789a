"""Regenerate ``resources/cf-standard-name-table.txt.gz`` from the CF XML table.

The table shipped with dasf_geo is derived from the CF Standard Name Table
XML that the ``compliance-checker`` package (Apache-2.0, IOOS) ships as
``compliance_checker/data/cf-standard-name-table.xml``; the table itself is
published by the CF conventions committee (cfconventions.org). Usage::

    pip download --no-deps compliance-checker -d /tmp/cc
    unzip -o /tmp/cc/compliance_checker-*.whl \\
        compliance_checker/data/cf-standard-name-table.xml -d /tmp/cc
    python -m dasf_geo.data.make_standard_name_table \\
        /tmp/cc/compliance_checker/data/cf-standard-name-table.xml

Output: one ``name<TAB>canonical_units`` line per entry and one
``alias<TAB>=name`` line per alias, after ``#`` header lines citing the source
and version. Gzip with mtime 0, so the output is reproducible.
"""

from __future__ import annotations

import gzip
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUTPUT = Path(__file__).parent / "resources" / "cf-standard-name-table.txt.gz"


def build(xml_path: str | Path, output: str | Path = OUTPUT) -> int:
    """Write the compact table; return the number of entries + aliases.

    Raises:
        ValueError: the XML is not a CF standard name table.
    """
    # the input is a trusted file from a package, not network input
    root = ET.parse(xml_path).getroot()
    if root.tag != "standard_name_table":
        raise ValueError(f"{xml_path} is not a CF standard name table")
    version = root.findtext("version_number", "?")
    modified = root.findtext("last_modified", "?")
    lines = [
        f"# CF Standard Name Table version {version} (last modified {modified})",
        "# Source: CF conventions committee, cfconventions.org, via the XML file",
        "# compliance_checker/data/cf-standard-name-table.xml of the PyPI package",
        "# compliance-checker 6.1.0 (Apache-2.0). Regenerate with",
        "# python -m dasf_geo.data.make_standard_name_table <xml>.",
        "# Format: name<TAB>canonical_units | alias<TAB>=name",
    ]
    rows = []
    for entry in root.iter("entry"):
        units = (entry.findtext("canonical_units") or "").strip()
        rows.append(f"{entry.get('id')}\t{units}")
    for alias in root.iter("alias"):
        rows.append(f"{alias.get('id')}\t={(alias.findtext('entry_id') or '').strip()}")
    text = "\n".join(lines + sorted(rows)) + "\n"
    with (
        open(output, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
        ) as fh,
    ):
        fh.write(text.encode("utf-8"))
    return len(rows)


if __name__ == "__main__":  # pragma: no cover
    print(build(sys.argv[1]), "names written to", OUTPUT)
