"""Operators' console accounts: password hashes, sessions, failed sign-ins, and the decisions about them."""
