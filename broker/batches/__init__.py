"""Batches: an agency's mass exchanges, one NDJSON file of requests, decided line by line exactly as single
exchanges are, forwarded to each holder in chunks, each line its own audit record, resumed after a restart."""
