"""The requester and app-owner SDK: a :class:`Client` and its namespaces, one module each.

::

    from oracle import Client
    from oracle.client import JobSpec

    c = Client.from_devnet(role="requester")              # or Client.connect(rpc_url, marketplace=..., ...)
    c.account.deposit(10 * 10**18)
    job = c.jobs.submit(JobSpec(app_id=1, count=10, args=["{index}"], reward=10**17, encrypt=True))
    for ev in c.jobs.watch(job.job_id):                    # typed events, until every task settled
        print(ev.name, ev.task_index, ev.progress.finalized)
    results = c.results.download(job.job_id, "out/")      # downloaded, decrypted, digest-checked, unpacked

=====================  ===============================================================================
``c.account``          balance, deposit, withdraw, faucet (:mod:`oracle.client.account`)
``c.apps``             build, push, register, update, allow, deprecate, get, list (:mod:`oracle.client.apps`)
``c.datasets``         add, get, list (:mod:`oracle.client.datasets`)
``c.jobs``             quote, submit, summary, task_page, get, list, tasks, watch, wait, cancel, close,
                       failures, explain (:mod:`oracle.client.jobs`)
``c.results``          download, verify (:mod:`oracle.client.results`)
``c.workers``          get, list: the workers' records (:mod:`oracle.client.workers`)
=====================  ===============================================================================

Every check that can be made before spending is made first (unknown app, access, balance, missing input
files, deadline too short): those raise a :class:`~oracle.exceptions.ClientError` and send nothing. A transaction
the contract refuses raises :class:`~oracle.exceptions.TransactionReverted` with the custom error decoded.
"""

from ._client import Client
from ._keyring import Keyring
from ._models import (
    AppInfo,
    Balance,
    DatasetInfo,
    Explanation,
    FailureGroup,
    JobEvent,
    JobProgress,
    JobSpec,
    JobStatus,
    JobSummary,
    Reason,
    SubmittedJob,
    TaskFailure,
    TaskInput,
    TaskPage,
    TaskResult,
    TaskState,
    TxInfo,
    WorkerInfo,
    WorkerStanding,
    format_amount,
    parse_amount,
    parse_duration,
)
from ._pinner import ResultPinner
from ._tasks import load_tasks
from .account import DEV_CHAIN_IDS, Account
from .apps import Apps
from .datasets import Datasets
from .jobs import Jobs
from .results import Results
from .workers import Workers

__all__ = [
    "DEV_CHAIN_IDS", "Account", "AppInfo", "Apps", "Balance", "Client", "DatasetInfo", "Datasets", "Explanation",
    "FailureGroup", "JobEvent", "JobProgress", "JobSpec", "JobStatus", "JobSummary", "Jobs", "Keyring", "Reason",
    "ResultPinner", "Results", "SubmittedJob", "TaskFailure", "TaskInput", "TaskPage", "TaskResult", "TaskState",
    "TxInfo", "WorkerInfo", "WorkerStanding", "Workers", "format_amount", "load_tasks", "parse_amount",
    "parse_duration",
]
