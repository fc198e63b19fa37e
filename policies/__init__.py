"""Sharing policies (white / grey / black, consent, field sets) and operators' permissions, decided by Casbin."""
