"""plantwatch: real-time monitoring and alerting for industrial machines."""

import warnings

__version__ = "0.1.0"


def _quiet_authlib() -> None:
    """Silence authlib's warning that it found httpx rather than httpx2, printed by every command otherwise.

    confluent-kafka's schema registry client (imported by Quix Streams, unused here) imports authlib's httpx
    integration, which warns on import since authlib 1.9.9; authlib turns its own warnings to "always" when first
    imported, so the filter goes in after that import, ahead of authlib's.
    """
    try:
        import authlib.deprecate  # noqa: F401
    except ImportError:
        return
    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)


_quiet_authlib()
