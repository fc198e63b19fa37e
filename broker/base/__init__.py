"""The hub's bottom layer: what the domain packages, the agency SDK and the hub's rooms share, importing nothing
else of the hub: signatures, the wire format, the error hierarchy, key files, caches, logs, metrics, CSV cells safe
in a spreadsheet, and the store's engine and its thread."""
