"""Tokens, ownership and idempotency against the service API (PostgreSQL + a private Redis, no workers).

tests/api/test_auth.py covers 401/403 on every route, per-user listing and the failed-auth rate
limit on the embedded server; this extends it: tokens never leak after creation (responses, the
server's log, the CLI's other commands, the store), token checks are constant-time, every
/v1/jobs/{id}/... route in the OpenAPI schema enforces ownership, and Idempotency-Key holds under
concurrent POSTs.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select, text

from models import Candidate, Job
from tests.reliability.stack import Stack
from tests.support.paths import REPO
from tests.support.specs import job_spec
from tests.support.waiting import wait_for

SPEC = job_spec(3)  # digits, 3 candidates, mgm: the API server knows it (no tiny plug-in there)


@dataclass
class Service:
    stack: Stack
    url: str
    responses: list[httpx.Response] = field(default_factory=list)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers,
                            event_hooks={"response": [self._keep]})

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in self.stack.env().items() if k != "KNAS_PLUGINS"}
        return subprocess.run([sys.executable, "-m", "knas.cli.main", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def service(module_stack) -> Service:
    s = module_stack(KNAS_USER_MAX_JOBS="1000")
    api = s.start_api()
    return Service(s, api.url)


def test_tokens_never_appear_after_creation(service):
    s = service.stack
    alice_name, bob_name = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    made = service.cli("users", "add", alice_name)
    assert made.returncode == 0, made.stderr
    alice = made.stdout.strip()
    assert alice.startswith("knas_") and alice not in made.stderr  # stdout only, for `$(knas users add ...)`
    bob = service.cli("users", "add", bob_name, "--admin").stdout.strip()
    old_bob, bob = bob, service.cli("users", "token", bob_name).stdout.strip()
    assert bob != old_bob and bob.startswith("knas_")
    tokens = [alice, old_bob, bob]

    with service.client(alice) as http:
        job = http.post("/v1/jobs", json=SPEC).json()
        for path in ("/v1/jobs", f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/candidates",
                     f"/v1/jobs/{job['id']}/candidates?format=csv", "/v1/me", "/v1/workers", "/healthz", "/metrics"):
            assert http.get(path).status_code == 200, path
    with service.client(alice + "x") as http:  # nearly right: refused without echoing what was sent
        assert http.get("/v1/jobs").status_code == 401
    with service.client(old_bob) as http:  # rotated away
        assert http.get("/v1/jobs").status_code == 401
    with service.client(bob) as http:
        assert http.get("/v1/jobs", params={"owner": alice_name}).json()["count"] == 1
    service.cli("users", "revoke", alice_name)
    with service.client(alice) as http:  # refused once the auth cache (KNAS_AUTH_CACHE_SECONDS, 1 s) lets go
        deadline = time.monotonic() + 3.0
        while (answer := http.get("/v1/jobs").status_code) == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer == 403

    listed = [service.cli("users", "list"), service.cli("users", "list", "--json")]
    assert all(r.returncode == 0 and alice_name in r.stdout for r in listed)
    texts = {
        "responses": "\n".join(f"{r.headers}\n{r.text}" for r in service.responses),
        "server log": s.apis[0].log,
        "users list": "\n".join(r.stdout + r.stderr for r in listed),
    }
    with s.store.session() as session:  # the store keeps only hashes
        texts["store"] = "\n".join(str(tuple(row)) for table in ("users", "jobs")
                                   for row in session.execute(text(f"SELECT * FROM {table}")))
    assert "GET /v1/jobs" in texts["server log"]  # the access log is on: the check below means something
    for where, content in texts.items():
        for token in tokens:
            assert token not in content, f"a token appears in the {where}"
            assert token[5:20] not in content, f"part of a token appears in the {where}"


def test_token_checks_are_constant_time(service, monkeypatch):
    """The presented token is hashed (SHA-256) and looked up by hash; the final check is hmac.compare_digest."""
    import hashlib
    import hmac

    from models import users

    s = service.stack
    token = s.add_user(f"carol-{uuid.uuid4().hex[:6]}")
    calls = []
    compare = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(users.hmac, "compare_digest", spy)
    principal, revoked = users.authenticate(s.store, token)
    assert principal is not None and not revoked
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert calls == [(digest, digest)]  # compared as digests, never the secret itself
    with s.store.session() as session:
        stored = session.execute(text("SELECT token_hash FROM users")).scalars().all()
    assert digest in stored and token not in stored
    # A wrong token with the right prefix costs the same lookup: no partial match on the secret exists.
    assert users.authenticate(s.store, token[:-1] + ("A" if token[-1] != "A" else "B")) == (None, False)


def job_routes(service: Service) -> list[tuple[str, str]]:
    """Every (method, path template) under /v1/jobs/{job_id} in the app's own OpenAPI schema."""
    schema = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    return sorted((method.upper(), path) for path, ops in schema["paths"].items()
                  if path.startswith("/v1/jobs/{job_id}") for method in ops)


def test_no_user_reaches_another_users_job_on_any_route(service):
    s = service.stack
    alice, mallory = s.add_user(f"alice2-{uuid.uuid4().hex[:6]}"), s.add_user(f"mallory-{uuid.uuid4().hex[:6]}")
    with service.client(alice) as http:
        job = http.post("/v1/jobs", json=SPEC).json()
    with service.client(mallory) as http:
        own = http.post("/v1/jobs", json={**SPEC, "seed": 1}).json()
    assert uuid.UUID(job["id"]).version == 4  # ids are random: nothing to enumerate
    with s.store.session() as session:
        candidate = session.scalar(select(Candidate.id).where(Candidate.job_id == job["id"]).limit(1))
    routes = job_routes(service)
    assert ("POST", "/v1/jobs/{job_id}/cancel") in routes and len(routes) >= 4, routes
    # GETs first, the cancel last: mallory's attempts must all fail, alice's must all reach the job.
    routes.sort(key=lambda r: r[0] != "GET")
    with service.client(mallory) as intruder, service.client(alice) as owner:
        for method, template in routes:
            path = template.format(job_id=job["id"], candidate_id=candidate)
            refused = intruder.request(method, path)
            assert refused.status_code == 404 and "no job" in refused.json()["detail"], (method, path, refused.text)
            if "{candidate_id}" in template:  # her own job id with alice's candidate id: still nothing
                crossed = intruder.request(method, template.format(job_id=own["id"], candidate_id=candidate))
                assert crossed.status_code == 404, crossed.text
            if template.endswith("/events"):  # a live stream: its status line is the answer, not its end
                with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {alice}"}) as raw:
                    with raw.stream(method, path) as stream:
                        assert stream.status_code == 200, (method, path)
                continue
            allowed = owner.request(method, path)
            # 409 "not yet" (the exported model of a job still running) reaches the job too: it names it
            not_yet = allowed.status_code == 409 and job["id"] in allowed.json()["detail"]
            assert allowed.status_code in (200, 202) or not_yet, (method, path, allowed.text)
    with service.client(alice) as http:
        assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"  # by alice, not mallory


def test_the_same_post_with_an_idempotency_key_creates_one_job_also_when_concurrent(service):
    s = service.stack
    name = f"dave-{uuid.uuid4().hex[:6]}"
    token = s.add_user(name)
    backlog = s.redis.backlog()
    with service.client(token) as http:
        first = http.post("/v1/jobs", json=SPEC, headers={"Idempotency-Key": "nightly-1"})
        again = http.post("/v1/jobs", json=SPEC, headers={"Idempotency-Key": "nightly-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    # Eight clients retrying the same POST at the same instant.
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        with service.client(token) as http:
            barrier.wait()
            answers.append(http.post("/v1/jobs", json={**SPEC, "seed": 2}, headers={"Idempotency-Key": "nightly-2"}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [202] * 8, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    with s.store.session() as session:
        keyed = dict(session.execute(select(Job.idempotency_key, func.count()).where(Job.owner == name)
                                     .group_by(Job.idempotency_key)).all())
    assert keyed == {"nightly-1": 1, "nightly-2": 1}
    # Exactly one start message per job reached the broker (no worker runs here to take them).
    wait_for(lambda: s.redis.backlog() == backlog + 2, 10, "two start_job messages", interval=0.05,
             context=lambda: f"backlog {s.redis.backlog()}, before {backlog}")

    # The key is per user: the same key from someone else is their own job.
    other = s.add_user(f"erin-{uuid.uuid4().hex[:6]}")
    with service.client(other) as http:
        theirs = http.post("/v1/jobs", json=SPEC, headers={"Idempotency-Key": "nightly-1"})
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]


def test_concurrent_retries_of_one_idempotent_post_are_never_refused_by_the_quota_that_job_fills(service):
    """A user at quota 1: the twins of a POST must get the job their key made, not a 429 (a race, so 4 rounds)."""
    s = service.stack
    token = s.add_user(f"frank-{uuid.uuid4().hex[:6]}", max_jobs=1)
    refused = []
    for round_ in range(4):
        answers: list[httpx.Response] = []
        barrier = threading.Barrier(8)

        def post(barrier=barrier, answers=answers, round_=round_) -> None:  # bound: this round's
            with service.client(token) as http:
                barrier.wait()
                answers.append(http.post("/v1/jobs", json={**SPEC, "seed": 10 + round_},
                                         headers={"Idempotency-Key": f"quota-{round_}"}))

        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        refused += [a.text for a in answers if a.status_code != 202]
        created = {a.json()["id"] for a in answers if a.status_code == 202}
        assert len(created) == 1
        with service.client(token) as http:  # free the quota for the next round
            assert http.post(f"/v1/jobs/{created.pop()}/cancel").status_code == 202
    assert not refused, refused
