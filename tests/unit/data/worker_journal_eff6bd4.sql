-- the worker journal eff6bd4's code wrote (see tests/unit/test_worker_view_saved.py); user_version 2
PRAGMA user_version = 2;
BEGIN TRANSACTION;
CREATE TABLE closed_jobs (job_id INTEGER PRIMARY KEY, closed_at REAL NOT NULL);
INSERT INTO "closed_jobs" VALUES(5,1800000000.0);
CREATE TABLE finished (
    task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
    step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL,
    pinned TEXT);
INSERT INTO "finished" VALUES('5:0',5,0,100,'{"claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "expiry": 1900000000, "lease": 21474836480, "lease_count": 3, "reason": "ok", "exit_code": 0, "error": null, "run_seconds": 1.25, "digest": "0x0101010101010101010101010101010101010101010101010101010101010101", "cid": "bafyresult0", "salt": "0x0202020202020202020202020202020202020202020202020202020202020202", "archive_sha256": "0303030303030303030303030303030303030303030303030303030303030303", "relay_id": 7, "outcome": "paid", "relayed": true, "earned": 90000000000000000}',1.7964223316639168263e+09,'bafyresult0');
INSERT INTO "finished" VALUES('5:1',5,1,100,'{"claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "expiry": 1900000000, "lease": 21474836480, "lease_count": 3, "reason": "app-error", "exit_code": 3, "error": "exit 3", "run_seconds": 0.5, "digest": "0x0404040404040404040404040404040404040404040404040404040404040404", "cid": "bafyresult1", "salt": "0x0505050505050505050505050505050505050505050505050505050505050505", "archive_sha256": "0606060606060606060606060606060606060606060606060606060606060606", "tx": "0x0707070707070707070707070707070707070707070707070707070707070707", "gas": 51000, "batch": 2, "outcome": "failure-reported", "earned": 0, "unpinned": true}',1.7964223316709816456e+09,NULL);
INSERT INTO "finished" VALUES('5:2',5,2,105,'{"claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "expiry": 1900000000, "lease": 21474836480, "lease_count": 3, "reason": "stopping", "outcome": "abandoned", "earned": 0, "tx": "0x0808080808080808080808080808080808080808080808080808080808080808", "gas": 40000, "batch": 1}',1.7964223316761577129e+09,NULL);
INSERT INTO "finished" VALUES('5:3',5,3,120,'{"claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "expiry": 1900000000, "lease": 21474836483, "lease_count": 1, "reason": "the lease is no longer ours"}',1.79642233168480515478e+09,NULL);
INSERT INTO "finished" VALUES('6:2',6,2,100,'{"claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "replica": 1, "expiry": 1900000100, "digest": "0x0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d", "cid": "bafyresult7", "salt": "0x0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e", "archive_sha256": "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", "relayed": false, "relay_failed": true, "commitment": "0x1010101010101010101010101010101010101010101010101010101010101010", "batch": 2, "outcome": "won", "earned": 50000000000000000}',1.79642233172173881533e+09,'bafyresult7');
INSERT INTO "finished" VALUES('6:3',6,3,110,'{"claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "replica": 0, "expiry": 1900000100, "reason": "inputs unavailable"}',1.79642233172411227223e+09,NULL);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_key TEXT NOT NULL, step INTEGER NOT NULL, at REAL NOT NULL,
    note TEXT);
INSERT INTO "history" VALUES(1,'5:0',10,1.79642233166042852398e+09,NULL);
INSERT INTO "history" VALUES(2,'5:0',20,1.79642233166123652457e+09,NULL);
INSERT INTO "history" VALUES(3,'5:0',30,1.79642233166244554521e+09,NULL);
INSERT INTO "history" VALUES(4,'5:0',50,1.79642233166315245631e+09,NULL);
INSERT INTO "history" VALUES(5,'5:0',55,1.79642233166355943683e+09,NULL);
INSERT INTO "history" VALUES(6,'5:0',100,1.7964223316639168263e+09,NULL);
INSERT INTO "history" VALUES(7,'5:1',10,1.79642233166548275944e+09,NULL);
INSERT INTO "history" VALUES(8,'5:1',30,1.79642233166788101196e+09,NULL);
INSERT INTO "history" VALUES(9,'5:1',50,1.7964223316686930656e+09,NULL);
INSERT INTO "history" VALUES(10,'5:1',100,1.79642233167044019703e+09,NULL);
INSERT INTO "history" VALUES(11,'5:1',100,1.7964223316709816456e+09,'result unpinned');
INSERT INTO "history" VALUES(12,'5:2',10,1.79642233167285871511e+09,NULL);
INSERT INTO "history" VALUES(13,'5:2',80,1.79642233167402791977e+09,'stopping');
INSERT INTO "history" VALUES(14,'5:2',105,1.7964223316761577129e+09,NULL);
INSERT INTO "history" VALUES(15,'5:3',10,1.79642233168244242671e+09,NULL);
INSERT INTO "history" VALUES(16,'5:3',120,1.79642233168480515478e+09,'the lease is no longer ours');
INSERT INTO "history" VALUES(17,'6:1',10,1.7964223316852250099e+09,NULL);
INSERT INTO "history" VALUES(18,'6:1',20,1.79642233168566036217e+09,NULL);
INSERT INTO "history" VALUES(19,'6:1',20,1.79642233168851256372e+09,NULL);
INSERT INTO "history" VALUES(20,'6:1',20,1.79642233169043207168e+09,NULL);
INSERT INTO "history" VALUES(21,'6:1',20,1.79642233169556641584e+09,'paused: outside the policy''s hours');
INSERT INTO "history" VALUES(22,'6:1',20,1.79642233170118498803e+09,'resumed');
INSERT INTO "history" VALUES(23,'6:1',20,1.79642233171044921873e+09,'ipfs down');
INSERT INTO "history" VALUES(24,'6:1',30,1.79642233171229505532e+09,NULL);
INSERT INTO "history" VALUES(25,'6:1',50,1.79642233171318912512e+09,NULL);
INSERT INTO "history" VALUES(26,'6:1',60,1.79642233171413230902e+09,NULL);
INSERT INTO "history" VALUES(27,'6:1',70,1.79642233171460413937e+09,NULL);
INSERT INTO "history" VALUES(28,'6:2',10,1.79642233171508741381e+09,NULL);
INSERT INTO "history" VALUES(29,'6:2',50,1.79642233171860146515e+09,NULL);
INSERT INTO "history" VALUES(30,'6:2',60,1.7964223317193305493e+09,NULL);
INSERT INTO "history" VALUES(31,'6:2',70,1.79642233172070646288e+09,NULL);
INSERT INTO "history" VALUES(32,'6:2',100,1.79642233172173881533e+09,NULL);
INSERT INTO "history" VALUES(33,'6:3',10,1.79642233172342491148e+09,NULL);
INSERT INTO "history" VALUES(34,'6:3',110,1.79642233172411227223e+09,NULL);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "kv" VALUES('gpus','{"gpus": 0, "gpu_devices": [], "gpu_note": "no GPU found"}');
INSERT INTO "kv" VALUES('stream','{"market": "0xabababababababababababababababababababab", "cursor": {"next_block": 99, "recent": {}}, "view": {"apps": {"1": {"app_id": 1, "deprecated": false, "deterministic_file": "", "image_digest": "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "image_ref": "busybox", "is_public": true, "metadata_uri": "ipfs://m", "owner": "0xabababababababababababababababababababab", "price": 3}, "2": {"app_id": 2, "deprecated": true, "deterministic_file": "out.txt", "image_digest": "sha256:cececececececececececececececececececececececececececececececece", "image_ref": "old", "is_public": false, "metadata_uri": "", "owner": "0xabababababababababababababababababababab", "price": 0}}, "classes": {"25769803777": "amd64"}, "datasets": {"2": {"checksum": "0xefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef", "cid": "bafydata", "owner": "0xabababababababababababababababababababab", "size": 1234}}, "jobs": {"5": {"app_id": 1, "arch_mask": 1, "callback": "0x0000000000000000000000000000000000000000", "closed": false, "confidence_ppb": 0, "cores": 1, "dataset_id": 2, "deadline": 2000000000, "encryption_key": "", "escrow": 99, "gpus": 0, "inputs_cid": "bafyinputs", "job_id": 5, "max_run_seconds": 60, "memory_mb": 64, "min_reputation": 0, "num_tasks": 8, "replication": 1, "requester": "0xabababababababababababababababababababab", "reward": 10}, "6": {"app_id": 1, "arch_mask": 1, "callback": "0x0000000000000000000000000000000000000000", "closed": false, "confidence_ppb": 990000000, "cores": 1, "dataset_id": 2, "deadline": 2000000000, "encryption_key": "", "escrow": 7, "gpus": 0, "inputs_cid": "bafyinputs", "job_id": 6, "max_run_seconds": 60, "memory_mb": 64, "min_reputation": 0, "num_tasks": 4, "replication": 3, "requester": "0xabababababababababababababababababababab", "reward": 10}}, "leases": {"21474836480": {"count": 3, "done": 1, "expiry": 1900000000, "worker": "0xabababababababababababababababababababab"}}, "replicas": {"25769803777": {"0": {"committed": true, "expiry": 1900000100, "worker": "0xabababababababababababababababababababab"}, "1": {"committed": false, "expiry": 1900000100, "worker": "0xcccccccccccccccccccccccccccccccccccccccc"}}}, "taken": {"5": [[0, 3], [6, 8]], "6": [[0, 1]]}, "targets": {"25769803778": 3}}}');
CREATE TABLE tasks (
    task_key TEXT PRIMARY KEY, job_id INTEGER NOT NULL, task_index INTEGER NOT NULL,
    step INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL);
INSERT INTO "tasks" VALUES('6:1',6,1,70,'{"job": {"app_id": 1, "arch_mask": 1, "callback": "0x0000000000000000000000000000000000000000", "closed": false, "confidence_ppb": 990000000, "cores": 1, "dataset_id": 2, "deadline": 2000000000, "encryption_key": "", "escrow": 7, "gpus": 0, "inputs_cid": "bafyinputs", "job_id": 6, "max_run_seconds": 60, "memory_mb": 64, "min_reputation": 0, "num_tasks": 4, "replication": 3, "requester": "0xabababababababababababababababababababab", "reward": 10}, "app": {"app_id": 1, "deprecated": false, "deterministic_file": "", "image_digest": "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "image_ref": "busybox", "is_public": true, "metadata_uri": "ipfs://m", "owner": "0xabababababababababababababababababababab", "price": 3}, "dataset": null, "claim_block": 12, "claim_tx": "abababababababababababababababababababababababababababababababab", "replica": 0, "expiry": 1900000100, "slurm_token": "a1b2c3d4e5f6", "slurm_job": "4242", "slurm_node": "node-1", "paused": null, "ran_s": 12.5, "run_by": 1900000050, "attempts": 1, "outages": 2, "retry_at": 1800000000.5, "error": null, "reason": "ok", "exit_code": 0, "run_seconds": 30.0, "digest": "0x0909090909090909090909090909090909090909090909090909090909090909", "cid": "bafyresult6", "salt": "0x0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a", "archive_sha256": "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "commitment": "0x0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "relay_id": 9, "relayed": true}',1.79642233171460413937e+09);
CREATE TABLE totals (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "totals" VALUES('step:100','3');
INSERT INTO "totals" VALUES('earned','140000000000000000');
INSERT INTO "totals" VALUES('step:105','1');
INSERT INTO "totals" VALUES('step:120','1');
INSERT INTO "totals" VALUES('step:110','1');
CREATE INDEX finished_age ON finished(updated_at);
CREATE INDEX finished_pinned ON finished(job_id, updated_at) WHERE pinned IS NOT NULL;
CREATE INDEX history_task ON history(task_key, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('history',34);
COMMIT;
