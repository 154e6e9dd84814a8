"""The HTTP probe: the probe, the wire client, the aiohttp session for proxies."""
