"""Stream apps (Quix Streams): the ingest that lands readings from Kafka in ClickHouse."""

import warnings

# Quix Streams imports authlib's httpx integration, which warns on import (two lines on stderr before anything the
# app says); nothing here uses it. authlib puts an "always" filter for its warnings first when imported, so the
# "ignore" goes in after it.
try:
    from authlib.deprecate import AuthlibDeprecationWarning
except ImportError:  # pragma: no cover - not installed with this Quix Streams release
    pass
else:
    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
