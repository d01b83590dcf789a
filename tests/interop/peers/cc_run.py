"""Run compliance-checker's CF 1.8 suite over files; print its failures as JSON.

Usage: ``python cc_run.py corpus-dir|FILE...`` in the compliance-checker venv.
With ``--corpus`` it prints the directory of the package's test corpus.
Output: ``{path: {"fails": [{"name": section, "msgs": [...]}]}}`` or
``{path: {"error": text}}`` for a file the checker cannot load.
"""

from __future__ import annotations

import json
import sys
import warnings


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")
    if argv[:1] == ["--corpus"]:
        from pathlib import Path

        import compliance_checker

        print(Path(compliance_checker.__file__).parent / "tests" / "data")
        return 0
    from compliance_checker.runner import CheckSuite

    suite = CheckSuite()
    suite.load_all_available_checkers()
    out: dict[str, object] = {}
    for path in argv:
        try:
            ds = suite.load_dataset(path)
            results, _errors = suite.run_all(ds, ["cf:1.8"], skip_checks=[])["cf:1.8"]
        except Exception as exc:  # report and go on with the next file
            out[path] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        fails = []
        for result in results:
            value = result.value
            ok = value if isinstance(value, bool) else value[0] == value[1]
            if not ok:
                fails.append({"name": result.name, "msgs": list(result.msgs)})
        out[path] = {"fails": fails}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
