"""The hub's one schema: every package's tables together (`tables`) and the migrations that build them; the one
place that knows every table."""
