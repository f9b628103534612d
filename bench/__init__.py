"""The benchmark suite (issue 13): `python -m bench --help`."""
