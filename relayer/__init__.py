"""The relayer: a FastAPI service that takes worker-signed (EIP-712) results, commits and reveals over HTTP and
lands many of them in one transaction, paying the gas itself. It talks to the chain through :mod:`oracle` only;
workers reach it over HTTP (``worker._relay``), never by importing it.

    relayer = Relayer(w3, market, account, interval=1.0, max_batch=50)   # or Relayer.from_settings(...)
    relayer.start()                                                      # flushes in a background thread
    app = create_app(relayer)                                            # POST /v1/{results,commits,reveals}
"""

from ._app import create_app
from ._messages import (
    FUNCTIONS,
    MODELS,
    Kind,
    MessageStatus,
    SignedCommit,
    SignedMessage,
    SignedResults,
    SignedReveal,
)
from ._service import Relayer
from ._settings import RelayerSettings
from .exceptions import RelayerError, RelayRejected

__all__ = [
    "FUNCTIONS", "MODELS", "Kind", "MessageStatus", "RelayRejected", "Relayer", "RelayerError", "RelayerSettings",
    "SignedCommit", "SignedMessage", "SignedResults", "SignedReveal", "create_app",
]
