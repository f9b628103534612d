"""followup: schedule and deliver customer follow-up messages from cron."""

__version__ = "0.2.0"
