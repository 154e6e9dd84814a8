"""Alerts: from an incident's timeline entry to a message in Slack, e-mail or a webhook.

    judging ──► routing.routed()      pure: which notifiers hear of an entry, and when
       │
    store (states.py) writes the entry and its outbox rows in one transaction
       │
    delivery.Delivery                 the worker: due rows ─► routing.disposition()
       ├─ content.compose()           pure: messages (grouped in a storm, held by the canary)
       ├─ ratelimit.RateLimit         pure: a token bucket per notifier
       ├─ lanes.Lanes                 one sending task per notifier
       │     └─ apprise_send.Channels the one place Apprise is called
       └─ outbox.Outbox               SQL: due rows, and each row settled once
    selfcheck.check()                 pure: the daemon's own trouble, sent from memory

The modules are imported by their own names; this package imports nothing, so the pure
ones stay free of Apprise and SQLAlchemy.
"""
