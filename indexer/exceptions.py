"""Exceptions raised by the indexer package.

Hierarchy::

    TasknetError                      (oracle.exceptions)
    └── IndexerError                  anything the indexer refuses or cannot do
        ├── SchemaMismatch            the database was made by another schema version or for another deployment
        ├── IndexerHalted             a reorg deeper than the finality depth: derived rows can no longer be trusted
        ├── BlockRace                 retryable: the chain changed between reading logs and reading their blocks
        └── NotFound                  an id the caller asked for is not in the mirror

Every message says what happened, the value involved, and what to do about it.
"""

from __future__ import annotations

from oracle.exceptions import TasknetError


class IndexerError(TasknetError):
    """Base class of the indexer's errors."""


class SchemaMismatch(IndexerError):
    """The database holds another schema version, chain or marketplace than this indexer expects."""


class IndexerHalted(IndexerError):
    """Ingestion stopped on purpose: a reorg deeper than the finality depth."""


class BlockRace(IndexerError):
    """Retryable: a block changed between ``eth_getLogs`` and reading the block (a reorg in progress)."""


class NotFound(IndexerError):
    """The requested job, task, worker, app or dataset is not in the mirror."""
