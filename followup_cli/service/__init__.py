"""The service layer: every rule of followup, shared by the CLI, cron passes and tests.

Operations take a Context, return result objects, and raise followup's exceptions; they
never print. SQL stays in followup_cli.store.
"""
