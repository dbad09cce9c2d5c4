"""The loop back: what returns to the bounce and unsubscribe mailboxes (bounces, delays,
complaints, mailto unsubscribes, auto-replies), classified so that it can be acted on."""
