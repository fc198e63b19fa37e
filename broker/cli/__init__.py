"""The `crossroads` command: one module per command group, thin shells over the hub's services."""
