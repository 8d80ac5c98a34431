"""What the tests share, one module per concern; import what you need: `from tests.support.servers import LiveServer`.

- paths: REPO (every subprocess runs from it), SHARED_DATA (../shared/data, or KNAS_SHARED_DATA)
- require: `require_service` (missing in CI fails, locally skips), `require_binary`, `require_shared`
- waiting: `wait_for(predicate, timeout, what, interval, context)`, the one way to wait
- processes: free ports, pids, the tree below a pid, `kill_tree`
- specs: `job_spec` (the one spec factory) and `tiny_spec` (its preset for the workers' `tiny` dataset)
- servers: the API server a test talks to (`LiveServer`: `knas serve` in a subprocess)
- workers: `knas worker` subprocesses (`start_worker_process`, `WorkerProc`, `worker_env`, `wait_for_rows`)
- services, fixtures: real PostgreSQL and Redis (a database per test, the test Redis, private servers to break)
- clocks, seed, image_folders, nats_fixture: store clocks, seeded stores, image folders, NATS-Bench files

docs/testing.md describes the lanes and how these fit together.
"""
