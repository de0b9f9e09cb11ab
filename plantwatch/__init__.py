"""plantwatch: real-time monitoring and alerting for industrial machines."""

__version__ = "0.1.0"
