"""Consent: what a person allowed which agency to receive, for which purposes and period, and its history."""
