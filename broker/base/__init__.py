"""The hub's bottom layer: what the domain packages, the agency SDK and the hub's rooms share, importing nothing
else of the hub: signatures, the wire format, the error hierarchy, key files, caches, logs, metrics, and the
store's engine and its thread."""
