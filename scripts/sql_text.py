"""Write followup_cli/store/sql_text.py: the store's named statements
(followup_cli/store/statements.py, SQLAlchemy Core) compiled for each dialect.

The store runs that text on whatever connection it is given, so the booking path can run on
the raw driver without importing SQLAlchemy. The module is committed;
`tests/integration/test_raw_statements.py` and `.ci/run` fail when it differs from what this script
writes now, so it cannot drift from the statements.

    python scripts/sql_text.py            # rewrite followup_cli/store/sql_text.py
    python scripts/sql_text.py --check    # exit 1 if the committed module is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "followup_cli" / "store" / "sql_text.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed module differs from a fresh one")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from followup_cli.store.statements import generate

    fresh = generate()
    if args.check:
        if not TARGET.is_file() or TARGET.read_text(encoding="utf-8") != fresh:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `python scripts/sql_text.py`",
                  file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(fresh, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
