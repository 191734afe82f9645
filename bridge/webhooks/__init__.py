"""Event webhooks: signed deliveries of the journal's events from the durable outbox.

* :mod:`.retry` — when to try again (exponential backoff with jitter) and when to give up (pure);
* :mod:`.payload` — the request body and its signed headers (pure);
* :mod:`.deliverer` — the worker that claims outbox rows and POSTs them.
"""
