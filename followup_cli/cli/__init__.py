"""The thin command-line edge: parse, call the service layer, render, map errors to exit
codes. Service modules are imported inside commands so `--help` and idle cron passes do not
pay for SQLAlchemy before they need it."""
