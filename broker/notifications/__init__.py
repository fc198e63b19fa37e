"""Change notifications: the outbox, who hears of a change, and the delivery of hub-signed notices."""
