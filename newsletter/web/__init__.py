"""The public web service: unsubscribe, preferences, signup and the archive."""
