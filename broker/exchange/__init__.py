"""The exchange path, in PROTOCOL.md's order: authentication, replay, limits, the pipeline and its pure gates,
and forwarding to the holder."""
