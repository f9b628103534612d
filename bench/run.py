"""`python bench/run.py`: the same as `python -m bench` (see bench/suite.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
