"""Wiring: the daemon, its workers, reload, the one-shot check, the web server."""
