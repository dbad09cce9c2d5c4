"""The local preview: the email as it will be sent, re-rendered on every save."""
