"""monitor: an uptime-monitoring daemon that checks sites and their origins."""

__version__ = "0.1.0"
