"""Users and tokens over HTTP: 401/403, each user sees only their own jobs, admins see all, quotas, failed logins."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from knas.client import KnasClientError
from models import Store
from models.users import revoke_user
from tests.support.specs import job_spec


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def test_every_v1_route_needs_a_token(embedded_server):
    job_path = f"/v1/jobs/{uuid.uuid4()}"
    routes = [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", job_path), ("GET", f"{job_path}/candidates"),
              ("POST", f"{job_path}/cancel"), ("GET", "/v1/workers"), ("GET", "/v1/spaces"), ("GET", "/v1/proxies"),
              ("GET", "/v1/datasets")]
    with httpx.Client(base_url=embedded_server.url, timeout=30) as http:
        for method, path in routes:
            response = http.request(method, path, json=job_spec() if method == "POST" else None)
            assert response.status_code == 401, (method, path, response.text)
            assert "Bearer" in response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"
        wrong = http.get("/v1/jobs", headers={"Authorization": "Bearer knas_not-a-real-token"})
        assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid token"
        basic = http.get("/v1/jobs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
        assert http.get("/healthz").status_code == 200  # probes stay open


def test_a_revoked_token_is_refused_with_403(embedded_server):
    name = unique("carol")
    token = embedded_server.add_user(name)
    with embedded_server.client(token=token) as carol:
        assert carol.jobs()["count"] == 0
        store = Store(f"sqlite:///{embedded_server.env['KNAS_HOME']}/knas.db", check_schema=False)
        assert revoke_user(store, name)
        store.dispose()
        # The API trusts a token it looked up for KNAS_AUTH_CACHE_SECONDS (1 s): refused within that time.
        deadline = time.monotonic() + 1.5
        while True:
            try:
                carol.jobs()
            except KnasClientError as error:
                refused = error
                break
            assert time.monotonic() < deadline, "a revoked token still worked after 1.5 s"
            time.sleep(0.05)
    assert refused.status_code == 403 and "revoked" in str(refused)


@pytest.mark.slow  # two searches, waited for
def test_users_see_and_cancel_only_their_own_jobs_and_admins_see_all(embedded_server):
    alice_name, bob_name = unique("alice"), unique("bob")
    alice = embedded_server.client(token=embedded_server.add_user(alice_name))
    bob = embedded_server.client(token=embedded_server.add_user(bob_name))
    admin = embedded_server.client()  # the embedded server's local admin
    with alice, bob, admin:
        job = alice.submit(job_spec(n=2, seed=31))
        assert job["owner"] == alice_name
        mine = bob.submit(job_spec(n=2, seed=32))

        for call in (lambda: bob.job(job["id"]), lambda: bob.candidates(job["id"]), lambda: bob.cancel(job["id"]),
                     lambda: bob.candidates_csv(job["id"])):
            with pytest.raises(KnasClientError) as hidden:
                call()
            assert hidden.value.status_code == 404 and "no job" in str(hidden.value)
        assert [j["id"] for j in bob.jobs()["data"]] == [mine["id"]]
        assert bob.jobs(owner=alice_name)["count"] == 0  # asking for someone else's jobs shows nothing
        assert [j["id"] for j in alice.jobs()["data"]] == [job["id"]]

        everyone = {j["id"] for j in admin.jobs(limit=200)["data"]}
        assert {job["id"], mine["id"]} <= everyone
        assert [j["id"] for j in admin.jobs(owner=bob_name)["data"]] == [mine["id"]]
        assert admin.job(job["id"])["owner"] == alice_name
        for j in (job, mine):
            finished = alice.wait(j["id"], timeout=120, interval=0.3) if j is job else bob.wait(j["id"], timeout=120)
            assert finished["status"] == "succeeded"


def test_the_admin_can_cancel_another_users_job(start_server, tmp_path):
    server = start_server(KNAS_HOME=str(tmp_path / "home"))
    dave = server.client(token=server.add_user(unique("dave")))
    with dave, server.client() as admin:
        blocker = dave.submit(job_spec(n=300, probe=8, seed=41))  # long enough to still be running
        cancelled = admin.cancel(blocker["id"])
        assert cancelled["status"] == "cancelled"
        assert dave.job(blocker["id"])["status"] == "cancelled"


def test_quotas_name_the_limit_they_hit(start_server, tmp_path):
    server = start_server(KNAS_HOME=str(tmp_path / "home"))
    erin = server.client(token=server.add_user("erin", max_jobs=1, max_candidates=5))
    with erin:
        with pytest.raises(KnasClientError) as too_big:
            erin.submit(job_spec(n=6))
        assert too_big.value.status_code == 422 and "max-candidates of user 'erin'" in str(too_big.value)

        running = erin.submit(job_spec(n=5, seed=51, proxy={"name": "mgm", "batch_size": 128}))
        with pytest.raises(KnasClientError) as too_many:
            erin.submit(job_spec(n=2, seed=52))
        assert too_many.value.status_code == 429 and "limit is 1 (max-jobs of user 'erin')" in str(too_many.value)
        erin.cancel(running["id"])
        assert erin.submit(job_spec(n=2, seed=53))["status"] in ("queued", "scoring")  # free again


def test_failed_authentications_are_rate_limited_per_client(start_server, tmp_path):
    server = start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_AUTH_FAILURES_PER_MINUTE="3")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        codes = [http.get("/v1/jobs", headers={"Authorization": f"Bearer guess{i}"}).status_code for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        limited = http.get("/v1/jobs")  # no token at all is a failure too
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "too many failed authentications" in limited.json()["detail"]


def test_failures_from_an_address_never_lock_out_a_valid_token_from_it(start_server, tmp_path):
    """A login node or a NAT: twenty bad tokens from one address, then a user with a good one from the same."""
    server = start_server(KNAS_HOME=str(tmp_path / "home"))  # the default limit, 20 a minute
    with httpx.Client(base_url=server.url, timeout=30) as http:
        codes = [http.get("/v1/jobs", headers={"Authorization": f"Bearer stale{i}"}).status_code for i in range(21)]
        assert codes == [401] * 20 + [429]
        assert http.get("/v1/jobs", headers=server.auth).status_code == 200
        assert http.get("/v1/jobs", headers={"Authorization": "Bearer stale"}).status_code == 429  # still limited


def test_a_made_up_forwarded_address_does_not_reset_the_count(start_live_server, tmp_path):
    """`knas serve` has uvicorn believe X-Forwarded-For only from KNAS_FORWARDED_ALLOW_IPS (default none), not 127.0.0.1."""
    server = start_live_server(KNAS_HOME=str(tmp_path / "home"), KNAS_AUTH_FAILURES_PER_MINUTE="3")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        codes = [http.get("/v1/jobs", headers={"Authorization": f"Bearer guess{i}",
                                               "X-Forwarded-For": f"10.0.{i}.{i}"}).status_code for i in range(6)]
    assert codes == [401, 401, 401, 429, 429, 429]


def test_a_listed_proxys_forwarded_address_is_believed(start_live_server, tmp_path):
    server = start_live_server(KNAS_HOME=str(tmp_path / "home"), KNAS_AUTH_FAILURES_PER_MINUTE="2",
                          KNAS_FORWARDED_ALLOW_IPS="127.0.0.1")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        def attempt(client: str) -> int:
            return http.get("/v1/jobs", headers={"Authorization": "Bearer x", "X-Forwarded-For": client}).status_code

        assert [attempt("10.1.1.1") for _ in range(3)] == [401, 401, 429]
        assert attempt("10.2.2.2") == 401  # another client behind the proxy has its own count


def test_the_limiter_remembers_a_bounded_number_of_addresses():
    from api.deps import FailedAuthLimiter

    limiter = FailedAuthLimiter(per_minute=2, storage_url="memory://", max_clients=100)
    for i in range(1000):
        for _ in range(2):  # each address reaches the limit
            limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    with pytest.raises(Exception) as limited:
        limiter.check("10.0.3.231")  # the newest: still counted
    assert getattr(limited.value, "status_code", None) == 429
    limiter.check("10.0.0.0")  # the oldest was forgotten, its failures with it


def test_in_redis_every_limiter_sees_every_failure_and_an_outage_fails_open(redis_url):
    from api.deps import FailedAuthLimiter

    first, second = (FailedAuthLimiter(per_minute=2, storage_url=redis_url) for _ in range(2))  # two API processes
    first.failed("10.9.9.9")
    second.failed("10.9.9.9")
    for limiter in (first, second):
        with pytest.raises(Exception) as limited:
            limiter.check("10.9.9.9")
        assert getattr(limited.value, "status_code", None) == 429
        assert 1 <= int(limited.value.headers["Retry-After"]) <= 61
    second.check("10.9.9.10")  # another address has its own count
    gone = FailedAuthLimiter(per_minute=1, storage_url="redis://127.0.0.1:1/0")  # nothing listens there
    gone.failed("10.9.9.9")
    gone.check("10.9.9.9")  # Redis unreachable: let through (the request fails its authentication anyway)


def test_an_idempotency_key_replays_its_job_and_refuses_another_spec(embedded_server):
    with embedded_server.client(token=embedded_server.add_user(unique("gina"))) as gina, \
            embedded_server.client(token=embedded_server.add_user(unique("hal"))) as hal:
        key = f"retry-{uuid.uuid4().hex}"
        first = gina.submit(job_spec(n=2, seed=61), idempotency_key=key)
        again = gina.submit(job_spec(n=2, seed=61), idempotency_key=key)
        assert again["id"] == first["id"] and gina.jobs()["count"] == 1
        with pytest.raises(KnasClientError) as conflict:
            gina.submit(job_spec(n=2, seed=62), idempotency_key=key)
        assert conflict.value.status_code == 409 and key in str(conflict.value) and first["id"] in str(conflict.value)
        # keys are per user: the same key from someone else is their own new job
        assert hal.submit(job_spec(n=2, seed=61), idempotency_key=key)["id"] != first["id"]


def test_quotas_on_the_service_stack_postgres_and_redis(start_server, tmp_path, pg_url, redis_url):
    """API only (PostgreSQL store, Redis broker, no worker): queued jobs count against max-jobs."""
    server = start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url)
    ivy, joe = server.add_user("ivy", max_jobs=2, max_candidates=4), server.add_user("joe", max_jobs=1)
    with server.client(token=ivy) as ivy, server.client(token=joe) as joe:
        with pytest.raises(KnasClientError) as too_big:
            ivy.submit(job_spec(n=5))
        assert too_big.value.status_code == 422 and "max-candidates of user 'ivy'" in str(too_big.value)
        first, second = ivy.submit(job_spec(n=4, seed=1)), ivy.submit(job_spec(n=4, seed=2))
        assert first["status"] == second["status"] == "queued"  # nobody works on them: they stay active
        with pytest.raises(KnasClientError) as too_many:
            ivy.submit(job_spec(n=2, seed=3))
        assert too_many.value.status_code == 429 and "2 active jobs, the limit is 2" in str(too_many.value)
        assert joe.submit(job_spec(n=2, seed=4))["owner"] == "joe"  # one user's quota is not another's
        ivy.cancel(first["id"])
        assert ivy.submit(job_spec(n=2, seed=5))["status"] == "queued"
