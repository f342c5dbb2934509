"""The SQL schema of the mirror (SQLAlchemy 2 Core), engine creation and the schema-version check.

Three kinds of tables:

* **bookkeeping**: ``meta`` (schema version, chain id, marketplace address), ``cursor`` (the event stream's
  position, saved in the same transaction as the rows derived from the events it covers), ``blocks``
  (hash and timestamp of every block that held an event);
* **facts**, append-only, one row per event or money movement: ``events`` (raw decoded events), ``txs``
  (the receipts of the transactions that emitted them: sender, gas used), ``payments`` and ``slashes``;
* **entities**, *versioned*: ``params``, ``apps``, ``datasets``, ``workers``, ``jobs``, ``tasks`` and
  ``replicas`` (a worker's contribution to a task). Each change writes a new version row carrying the block
  it happened in; exactly one version per key has ``is_current`` set (a partial unique index enforces it). A
  reorg deletes every row above the common ancestor and marks the newest remaining version of each affected
  key current again;
* **aggregates**, versioned like the entities and maintained by the ingester in the same transaction:
  ``counters`` (named totals: tasks per status, events per name, open escrow, ...; see :data:`COUNTERS`) and
  ``series`` (tasks settled per second of chain time). The API reads them instead of counting big tables, and
  a reorg rolls them back like every other version.

Token amounts are uint256: they are stored as length-prefixed decimal strings (:class:`U256`: two digits of
length, then the digits, so ``0`` is ``"010"`` and ``10**18`` is ``"19" + "1" + 18 * "0"``), exact on every
backend and ordered like the numbers by SQL. Task ids are ``jobId << 32 | index`` and fit a signed 64-bit
integer while job ids stay below 2**31.

Indexes serving the current state are *partial* (``WHERE is_current``): they hold one entry per key, and the
API's list queries (always filtered on ``is_current``) read them in order without sorting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.types import TypeDecorator

from oracle.credibility import MoreReason

from .exceptions import SchemaMismatch

#: Bump when a table changes; an existing database of another version is refused, never migrated silently.
SCHEMA_VERSION = 4  # 4: workers.platform_class, tasks.platform_class (homogeneous redundancy)


def wanted_reason(reason: int) -> str:
    """A ``ReplicaWanted.reason`` as the mirror spells it (``tasks.wanted``, the API): ``not-credible``,
    ``spot-check``, ``dispute``."""
    try:
        return MoreReason(reason).name.lower().replace("_", "-")
    except ValueError:
        return f"reason-{reason}"


def u256_text(value: int) -> str:
    """The stored form of a uint256: digit count (2 digits) + digits; sorts like the number."""
    digits = str(value)
    return f"{len(digits):02d}{digits}"


class U256(TypeDecorator[int]):
    """An unsigned 256-bit integer stored as :func:`u256_text` (sorts like the number)."""

    impl = String(80)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> str | None:
        return None if value is None else u256_text(int(value))

    def process_result_value(self, value: str | None, dialect: Any) -> int | None:
        return None if value is None else int(value[2:])


metadata = MetaData()


def _fact(name: str, *columns: Column[Any], **kw: Any) -> Table:
    return Table(name, metadata, *columns, **kw)


def _versioned(name: str, key: Column[Any], *columns: Column[Any]) -> Table:
    """An entity table: ``key`` + state columns + the version's block, log index and current flag.

    Indexes: the primary key (key, block) for a key's history, ``block_number`` for reorg rollbacks, and a
    partial unique index on the key over the current versions (one current version per key).
    """
    table = Table(
        name, metadata, key, *columns,
        Column("block_number", BigInteger, primary_key=True),
        Column("log_index", Integer, nullable=False),
        Column("is_current", Boolean, nullable=False),
    )
    _current_index(table, f"ux_{name}_current", key.name, unique=True)
    Index(f"ix_{name}_block", table.c.block_number)
    table.info["key"] = key.name
    return table


def current_of(table: Table) -> Any:
    """The predicate selecting current versions (the partial indexes are defined with this same expression)."""
    return table.c.is_current.is_(True)


def _current_index(table: Table, name: str, *columns: str, unique: bool = False) -> Index:
    where = current_of(table)
    return Index(name, *(table.c[c] for c in columns), unique=unique, sqlite_where=where, postgresql_where=where)


meta = _fact("meta", Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

cursor = _fact(
    "cursor",
    Column("id", Integer, primary_key=True),
    Column("next_block", BigInteger, nullable=False),
    Column("recent", Text, nullable=False),  # JSON {block number: hash} of the unfinalized window
    Column("chain_head", BigInteger, nullable=False),
    Column("head_timestamp", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),  # unix seconds of the last committed step
    Column("events_total", BigInteger, nullable=False),
)

blocks = _fact(
    "blocks",
    Column("number", BigInteger, primary_key=True),
    Column("hash", String(66), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

events = _fact(
    "events",
    Column("block_number", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("block_hash", String(66), nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("address", String(42), nullable=False),
    Column("name", String(40), nullable=False),
    Column("args", Text, nullable=False),
    Column("task_id", BigInteger),
    Column("job_id", BigInteger),
    Column("worker", String(42)),
    Column("timestamp", BigInteger, nullable=False),
)
for _col in ("name", "task_id", "job_id", "worker"):  # each filter of /api/events, newest first without a sort
    Index(f"ix_events_{_col}", events.c[_col], events.c.block_number, events.c.log_index)

txs = _fact(
    "txs",
    Column("hash", String(66), primary_key=True),
    Column("block_number", BigInteger, nullable=False, index=True),
    Column("tx_index", Integer, nullable=False),
    Column("sender", String(42), nullable=False, index=True),
    Column("to", String(42)),
    Column("gas_used", BigInteger, nullable=False),
    Column("gas_price", U256, nullable=False),
    Column("n_tasks", Integer, nullable=False),  # tasks the transaction touched (gas is shared among them)
)

payments = _fact(
    "payments",
    Column("block_number", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    # deposit | withdraw | escrow | reward | protocol_fee | refund | app_fee | dataset_fee | stake | unstake
    Column("kind", String(16), nullable=False),
    Column("account", String(42)),
    Column("amount", U256, nullable=False),
    Column("job_id", BigInteger),
    Column("task_id", BigInteger),
    Column("timestamp", BigInteger, nullable=False),
)
for _col in ("kind", "account", "job_id"):  # each filter of /api/payments, newest first
    Index(f"ix_payments_{_col}", payments.c[_col], payments.c.block_number, payments.c.log_index)

slashes = _fact(
    "slashes",
    Column("block_number", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("worker", String(42), nullable=False, index=True),
    Column("task_id", BigInteger, nullable=False, index=True),
    Column("amount", U256, nullable=False),
    Column("reputation", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

params = _versioned(
    "params", Column("id", Integer, primary_key=True),
    Column("data", Text, nullable=False),  # JSON of IMarketplace.Params (amounts as strings)
    Column("treasury", String(42)),
)

apps = _versioned(
    "apps", Column("app_id", BigInteger, primary_key=True),
    Column("owner", String(42), nullable=False),
    Column("image_ref", Text, nullable=False),
    Column("image_digest", String(80), nullable=False),
    Column("metadata_uri", Text, nullable=False),
    Column("price", U256, nullable=False),
    Column("is_public", Boolean, nullable=False),
    Column("deterministic_file", Text, nullable=False),
    Column("deprecated", Boolean, nullable=False),
    Column("earned", U256, nullable=False),
    Column("jobs", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
)

datasets = _versioned(
    "datasets", Column("dataset_id", BigInteger, primary_key=True),
    Column("owner", String(42), nullable=False),
    Column("cid", Text, nullable=False),
    Column("checksum", String(66), nullable=False),
    Column("price", U256, nullable=False),
    Column("any_requester", Boolean, nullable=False),
    Column("any_app", Boolean, nullable=False),
    Column("deprecated", Boolean, nullable=False),
    Column("earned", U256, nullable=False),
    Column("jobs", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
)

workers = _versioned(
    "workers", Column("address", String(42), primary_key=True),
    Column("cores", Integer, nullable=False),
    Column("memory_mb", BigInteger, nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("arch_mask", Integer, nullable=False),
    Column("stake", U256, nullable=False),
    Column("locked", U256, nullable=False),
    Column("unstaking", U256, nullable=False),
    Column("reputation", BigInteger, nullable=False),
    Column("slashes", Integer, nullable=False),
    Column("banned", Boolean, nullable=False),
    Column("earned", U256, nullable=False),
    Column("slashed", U256, nullable=False),
    Column("tasks_done", BigInteger, nullable=False),
    Column("tasks_failed", BigInteger, nullable=False),
    Column("active_claims", BigInteger, nullable=False),
    # results confirmed by another worker's matching replica since the last slash (the contract's Worker.verified,
    # credibility mode): +1 per win of a task finalized with 2+ winners, 0 after a slash
    Column("verified", BigInteger, nullable=False),
    Column("platform_class", String(32)),  # declared with setPlatformClass (NULL: none)
    Column("registered_at", BigInteger, nullable=False),
    Column("last_activity", BigInteger, nullable=False),
)

jobs = _versioned(
    "jobs", Column("job_id", BigInteger, primary_key=True),
    Column("requester", String(42), nullable=False),
    Column("app_id", BigInteger, nullable=False),
    Column("dataset_id", BigInteger, nullable=False),
    Column("num_tasks", BigInteger, nullable=False),
    Column("replication", Integer, nullable=False),
    Column("reward", U256, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("max_run_seconds", BigInteger, nullable=False),
    Column("cores", Integer, nullable=False),
    Column("memory_mb", BigInteger, nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("arch_mask", Integer, nullable=False),
    Column("min_reputation", BigInteger, nullable=False),
    Column("callback", String(42), nullable=False),
    Column("inputs_cid", Text, nullable=False),
    Column("encryption_key", Text, nullable=False),
    Column("escrow", U256, nullable=False),
    Column("owners_price", U256, nullable=False),
    Column("replica_stake", U256, nullable=False),
    Column("fee_bps", Integer, nullable=False),
    Column("claimed", BigInteger, nullable=False),  # tasks that came to life (first claim)
    Column("settled", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    Column("cancelled", BigInteger, nullable=False),
    Column("closed", Boolean, nullable=False),
    Column("refund", U256, nullable=False),
    Column("app_paid", U256, nullable=False),
    Column("dataset_paid", U256, nullable=False),
    Column("escrow_held", U256, nullable=False),  # what the marketplace still holds for it (= jobEscrow view)
    # credibility mode (JobCredibility; NULL for a fixed R): `replication` is then the replica cap
    Column("confidence_ppb", BigInteger),
    Column("fault_bps", Integer),
    Column("spot_check_bps", Integer),
    Column("posted_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger),
)

tasks = _versioned(
    "tasks", Column("task_id", BigInteger, primary_key=True),
    Column("job_id", BigInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),  # running | revealing | finalized | failed | open
    Column("target", Integer, nullable=False),
    Column("claims", Integer, nullable=False),
    Column("occupied", Integer, nullable=False),
    Column("committed", Integer, nullable=False),
    Column("revealed", Integer, nullable=False),
    Column("worker", String(42)),  # the lease holder (R = 1) or the last claimant
    Column("lease_start", BigInteger),
    Column("result_digest", String(66)),
    Column("result_cid", Text),
    Column("winners", Integer, nullable=False),
    Column("reward_each", U256, nullable=False),
    Column("refund", U256, nullable=False),  # to the requester: a failed task's escrow, or (credibility mode) the
    # unused replicas' rewards of a finalized one
    Column("callback_ok", Boolean),
    # credibility mode: why the task wanted each replica past the first (ReplicaWanted), in order, comma-separated:
    # not-credible | spot-check | dispute ("" when it wanted none)
    Column("wanted", Text, nullable=False),
    # homogeneous redundancy: the platform class the first replica bound the task to (NULL: not an HR task)
    Column("platform_class", String(32)),
    Column("gas_used", BigInteger, nullable=False),
    Column("txs", Integer, nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
)

replicas = _versioned(
    "replicas", Column("rid", String(40), primary_key=True),  # "<task id>:<claim number>"
    Column("task_id", BigInteger, nullable=False),
    Column("job_id", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("slot", Integer, nullable=False),
    Column("worker", String(42), nullable=False),
    # claimed | committed | revealed | won | lost | expired | released | unpaid
    Column("status", String(10), nullable=False),
    Column("expiry", BigInteger, nullable=False),
    Column("commitment", String(66)),
    Column("result_digest", String(66)),
    Column("result_cid", Text),
    Column("reward", U256, nullable=False),
    Column("slashed", U256, nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

counters = _versioned(
    "counters", Column("name", String(64), primary_key=True),
    Column("value", U256, nullable=False),
)

series = _versioned(  # tasks settled (finished_at) in one second of chain time
    "series", Column("t", BigInteger, primary_key=True, autoincrement=False),
    Column("settled", BigInteger, nullable=False),  # any status
    Column("finalized", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    Column("gas", BigInteger, nullable=False),  # summed gas_used of the finalized ones
)

# Partial indexes over the current versions, one per list query of the API and per projector load.
_current_index(apps, "ix_apps_owner", "owner", "app_id")
_current_index(datasets, "ix_datasets_owner", "owner", "dataset_id")
_current_index(jobs, "ix_jobs_requester", "requester", "job_id")
_current_index(jobs, "ix_jobs_app", "app_id", "job_id")
_current_index(tasks, "ix_tasks_recent", "block_number", "task_id")
_current_index(tasks, "ix_tasks_status", "status", "block_number", "task_id")
_current_index(tasks, "ix_tasks_job", "job_id", "status", "block_number", "task_id")
_current_index(tasks, "ix_tasks_worker", "worker", "block_number", "task_id")
_current_index(replicas, "ix_replicas_task", "task_id", "seq")
_current_index(replicas, "ix_replicas_worker", "worker", "block_number")

#: Names of the ``counters`` rows (``{status}``, ``{name}`` and ``{kind}`` are filled in).
COUNTERS = ("tasks", "tasks:{status}", "gas:finalized", "jobs", "jobs:open", "escrow:open", "workers", "apps",
            "datasets", "events", "events:{name}", "payments", "payments:{kind}", "slashes")

VERSIONED: tuple[Table, ...] = (params, apps, datasets, workers, jobs, tasks, replicas, counters, series)
FACTS: tuple[Table, ...] = (events, txs, payments, slashes, blocks)


def make_engine(url: str) -> Engine:
    """An engine for ``url``: a path or ``sqlite:///…`` (WAL, one writer + many readers) or PostgreSQL."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash (WAL)
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


def _get_meta(conn: Connection) -> dict[str, str]:
    return {r.key: r.value for r in conn.execute(select(meta.c.key, meta.c.value))}


def init_db(engine: Engine, *, chain_id: int | None = None, marketplace: str | None = None) -> dict[str, str]:
    """Create the tables if missing; check the schema version and the deployment. Return the meta values.

    Raises :class:`SchemaMismatch` when the database was made by another schema version, another chain or
    for another marketplace.
    """
    with engine.begin() as conn:
        existing = set(inspect(conn).get_table_names())
        if "meta" in existing:
            values = _get_meta(conn)
            version = int(values.get("schema_version", "0"))
            if version != SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"the database {engine.url.render_as_string(hide_password=True)} has indexer schema version "
                    f"{version}, this indexer needs {SCHEMA_VERSION}; point --db at a new database (the mirror is "
                    "rebuilt from the chain) or run the matching indexer version")
        elif existing & {t.name for t in metadata.sorted_tables}:
            raise SchemaMismatch(f"the database {engine.url.render_as_string(hide_password=True)} has indexer "
                                 "tables but no schema version; use an empty database")
        metadata.create_all(conn)
        values = _get_meta(conn)
        wanted = {"schema_version": str(SCHEMA_VERSION)}
        if chain_id is not None:
            wanted["chain_id"] = str(chain_id)
        if marketplace is not None:
            wanted["marketplace"] = marketplace.lower()
        for key, value in wanted.items():
            if key in values and values[key] != value:
                raise SchemaMismatch(
                    f"the database was built for {key} {values[key]}, not {value}; use another --db for "
                    "another chain or deployment")
            if key not in values:
                conn.execute(meta.insert().values(key=key, value=value))
                values[key] = value
        return values


class CursorRow(TypedDict):
    """The ingester's saved position (the ``cursor`` row), its unfinalized window decoded."""

    next_block: int
    recent: dict[int, str]  # block number -> hash
    chain_head: int
    head_timestamp: int
    updated_at: int
    events_total: int


def load_cursor(conn: Connection) -> CursorRow | None:
    row = conn.execute(select(cursor).where(cursor.c.id == 1)).mappings().first()
    if row is None:
        return None
    return CursorRow(next_block=int(row["next_block"]),
                     recent={int(k): str(v) for k, v in json.loads(row["recent"]).items()},
                     chain_head=int(row["chain_head"]), head_timestamp=int(row["head_timestamp"]),
                     updated_at=int(row["updated_at"]), events_total=int(row["events_total"]))


def save_cursor(conn: Connection, *, next_block: int, recent: dict[int, str], chain_head: int,
                head_timestamp: int, events_added: int) -> None:
    current = conn.execute(select(cursor.c.events_total).where(cursor.c.id == 1)).scalar()
    values = {"next_block": next_block, "recent": json.dumps({str(k): v for k, v in sorted(recent.items())}),
              "chain_head": chain_head, "head_timestamp": head_timestamp, "updated_at": int(time.time()),
              "events_total": (current or 0) + events_added}
    if current is None:
        conn.execute(cursor.insert().values(id=1, **values))
    else:
        conn.execute(cursor.update().where(cursor.c.id == 1).values(**values))


# a row on its way to the driver: any table's columns by name (the typed rows are in indexer._row_types)
_RowBuilder = Callable[[Mapping[str, object]], tuple[object, ...]]
_INSERTS: dict[tuple[str, str], tuple[str, _RowBuilder]] = {}


_U256_TEXT: dict[int, str] = {}


def _u256_or_none(value: int | None) -> str | None:
    """:func:`u256_text`, memoized (amounts repeat: zeros, rewards, stakes)."""
    if value is None:
        return None
    text = _U256_TEXT.get(value)
    if text is None:
        if len(_U256_TEXT) > 10_000:
            _U256_TEXT.clear()
        digits = str(value)
        text = _U256_TEXT[value] = f"{len(digits):02d}{digits}"
    return text


def _row_builder(table: Table) -> _RowBuilder:
    """A compiled ``row dict -> tuple of column values`` (token amounts encoded) for ``table``'s columns."""
    parts = [f"u(r[{c.name!r}])" if isinstance(c.type, U256) else f"r[{c.name!r}]" for c in table.columns]
    namespace: dict[str, object] = {"u": _u256_or_none}
    exec(f"def build(r):\n    return ({', '.join(parts)},)\n", namespace)  # noqa: S102 - column names only
    return cast(_RowBuilder, namespace["build"])


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert ``rows`` (dicts holding every column) in the connection's transaction, straight through the
    driver: one ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL. Token amounts are encoded
    here (:func:`u256_text`); the other values are plain Python ints, strings, bools and None."""
    if not rows:
        return
    dialect = conn.dialect
    plan = _INSERTS.get((dialect.name, table.name))
    if plan is None:
        names = [c.name for c in table.columns]
        quoted = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
        if dialect.name == "postgresql":
            sql = f"COPY {table.name} ({quoted}) FROM STDIN"
        else:
            sql = f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' * len(names))})"
        plan = _INSERTS[(dialect.name, table.name)] = (sql, _row_builder(table))
    sql, build = plan
    values = [build(row) for row in rows]
    driver = conn.connection.driver_connection
    assert driver is not None
    if dialect.name == "postgresql":
        with driver.cursor() as cur, cur.copy(sql) as copy:
            for v in values:
                copy.write_row(v)
    else:
        cur = driver.cursor()
        try:
            cur.executemany(sql, values)
        finally:
            cur.close()


def chunks(items: Iterable[Any], size: int = 500) -> Iterable[list[Any]]:
    buf: list[Any] = []
    for item in items:
        buf.append(item)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf
