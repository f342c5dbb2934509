"""The auditor's indexer: a reorg-safe SQL mirror of the marketplace, its read-only HTTP API and dashboard,
and an independent verifier of task outcomes.

    engine = make_engine("indexer.db")                        # or "postgresql://user@host/db"
    indexer = Indexer(engine, w3, marketplace_address, from_block=deploy_block, confirmations=2)
    indexer.sync()                                            # or indexer.run(should_stop)
    app = create_app(engine)                                  # FastAPI: /api/..., /audit/..., /metrics, /
    report = Verifier(w3, marketplace_address, ipfs).task(task_id)
"""

from ._app import create_app
from ._db import SCHEMA_VERSION, init_db, make_engine
from ._ingest import Indexer, StepResult
from ._verify import Check, Report, Verifier
from .exceptions import BlockRace, IndexerError, IndexerHalted, NotFound, SchemaMismatch

__all__ = [
    "SCHEMA_VERSION", "BlockRace", "Check", "Indexer", "IndexerError", "IndexerHalted", "NotFound", "Report",
    "SchemaMismatch", "StepResult", "Verifier", "create_app", "init_db", "make_engine",
]
