"""The operators' console at /console: a browser interface for privacy officers and administrators, signed in
with a password, over the same services the v1 API uses."""
