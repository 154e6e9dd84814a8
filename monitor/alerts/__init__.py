"""Alerts: from an incident's timeline entry to a message in Slack, e-mail or a webhook.

    judging ──► routing.routed()      pure: which notifiers hear of an entry, and when
       │
    store (states.py) writes the entry and its outbox rows in one transaction
       │
    delivery.Delivery                 the worker: its passes, when (timing.py, pure)
       ├─ triage.triage()             pure: due rows ─► routing.disposition()
       ├─ content.compose()           pure: messages (grouped in a storm, held by the canary)
       ├─ ratelimit.RateLimit         pure: a token bucket per notifier
       ├─ lanes.Lanes                 one sending task per notifier
       │     └─ apprise_send.Channels the one place Apprise is called
       ├─ ledger.Ledger               settles rows (triage.after_send), tracks those in flight
       │     └─ outbox.Outbox         SQL: due rows, and each row settled once
       └─ direct.FromMemory           self alerts and canary notices, sent from memory
    selfcheck.check()                 pure: the daemon's own trouble

The modules are imported by their own names; this package imports nothing, so content,
ratelimit and selfcheck stay free of Apprise and SQLAlchemy (triage and timing use the
outbox's row values, which live beside its SQL).
"""
