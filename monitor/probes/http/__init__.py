"""The HTTP probe: the probe, its two transports (the wire client, aiohttp for proxies)."""
