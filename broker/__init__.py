"""The Crossroads hub: brokers signed exchanges between agencies, holding no records itself."""
