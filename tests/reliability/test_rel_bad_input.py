"""Bad input against the service API (PostgreSQL + Redis, no workers: submitted jobs just queue).

Property-based: schemathesis generates requests from the app's own `/openapi.json` for every
operation, bounded in examples, and no answer may be a 5xx. Hand-written: the inputs a fuzzer
rarely builds (tests/api/routes/test_jobs_routes.py covers the plain spec errors; these extend it):
out-of-space architectures, enormous numbers, wrong content types, unicode and SQL-looking
strings. Every one must be a 4xx whose `detail` names the problem.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import func, select

from models import Job
from tests.reliability.ledger import LEDGER
from tests.reliability.stack import Stack
from tests.support.specs import job_spec

TSS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
BASE = job_spec(3)  # a valid spec each case breaks in one place


@dataclass
class Api:
    stack: Stack
    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def jobs_in_store(self) -> int:
        with self.stack.store.session() as s:
            return s.scalar(select(func.count()).select_from(Job))


@pytest.fixture(scope="module")
def api(module_stack) -> Api:
    # Generous quotas and auth limit (the fuzzer must reach the handlers), small ceilings (cheap jobs).
    s = module_stack(KNAS_USER_MAX_JOBS="100000", KNAS_AUTH_FAILURES_PER_MINUTE="100000",
                     KNAS_MAX_CANDIDATES="200", KNAS_MAX_PROBE_BATCH="64", KNAS_MAX_EPOCHS="3")
    server = s.start_api()
    return Api(s, server.url, s.add_user("fuzz", admin=True))


EXAMPLES = 40  # per operation and generation mode: ~1,000 requests in all, well under a minute


def test_no_generated_request_gets_a_5xx(api):
    """Every operation of /openapi.json, positive (valid per schema) and negative (schema-violating) cases."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    openapi = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in openapi.get_all_operations()]
    assert any(op.path == "/v1/jobs" and op.method.upper() == "POST" for op in operations), [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case):
                response = case.call(headers=api.auth, timeout=30)
                LEDGER.fuzz[f"{response.status_code // 100}xx"] += 1
                assert response.status_code < 500, (f"{response.status_code}: {response.text[:500]}\n"
                                                    f"{case.as_curl_command()}")
                if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                    detail = response.json().get("detail")
                    assert isinstance(detail, str) and detail, f"no message: {response.text[:500]}"

            try:
                run()
            except Unsatisfiable:  # nothing to break: an operation without parameters or body has no negative case
                assert mode == GenerationMode.NEGATIVE, operation.label
            except Exception as error:  # noqa: BLE001 - collect every operation's failure, then fail once
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)


def spec(**changes) -> dict:
    return {**BASE, **changes}


BAD_SPECS = [
    # architectures outside the space, or not architectures at all
    (spec(candidates={"strategy": "list", "archs": ["|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|"]}),
     "unknown op 'conv_7x7'"),
    (spec(candidates={"strategy": "list", "archs": ["|none~0|+|none~0|none~1|"]}), "needs 3 nodes"),
    (spec(candidates={"strategy": "list", "archs": ["|none~5|+|none~0|none~1|+|none~0|none~1|none~2|"]}),
     "edge 'none~5'"),
    (spec(candidates={"strategy": "list", "archs": ["8:16:24:32:64"]}), "nats-tss arch needs 3 nodes"),
    (spec(space="nats-sss", candidates={"strategy": "list", "archs": ["8:16:24:32:65"]}), "'65' channels"),
    (spec(space="nats-sss", candidates={"strategy": "list", "archs": [TSS]}), "nats-sss arch needs 5 channel"),
    (spec(candidates={"strategy": "list", "archs": ["x" * 5000]}), "candidates.archs[0]"),
    (spec(candidates={"strategy": "list", "archs": []}), "archs"),
    # enormous or impossible numbers
    (spec(candidates={"strategy": "random", "n": 10**12}), "candidates.n=1000000000000 is larger than nats-tss"),
    (spec(candidates={"strategy": "random", "n": 2**63}), "is larger than nats-tss"),
    (spec(candidates={"strategy": "random", "n": 10**40}), "is larger than nats-tss"),
    (spec(candidates={"strategy": "random", "n": 0}), "candidates.random.n"),
    (spec(candidates={"strategy": "random", "n": -1}), "candidates.random.n"),
    (spec(top_k=-1), "top_k"),
    (spec(top_k=10**30), "top_k=1000000000000000000000000000000 is larger than the 3 candidates"),
    (spec(seed=10**30), "seed"),
    (spec(proxy={"name": "mgm", "batch_size": 10**30}), "proxy.batch_size"),
    (spec(final={"mode": "train", "epochs": 10**30}), "epochs"),
    # unknown names, in unicode too, and SQL-looking strings: refused by name, echoed safely
    (spec(dataset="ｄｉｇｉｔｓ"), "unknown dataset 'ｄｉｇｉｔｓ'"),
    (spec(dataset="digits\u0000"), "unknown dataset"),
    (spec(space="nats\u202etss"), "unknown search space"),
    (spec(proxy={"name": "😀" * 40, "batch_size": 8}), "unknown proxy"),
    (spec(dataset="digits'; DROP TABLE jobs; --"), "unknown dataset \"digits'; DROP TABLE jobs; --\""),
    (spec(proxy={"name": "mgm' OR '1'='1", "batch_size": 8}), "unknown proxy \"mgm' OR '1'='1\""),
    (spec(space="nats-tss\" OR 1=1 --"), "unknown search space"),
]


@pytest.mark.parametrize("body, message", BAD_SPECS, ids=lambda v: None if isinstance(v, dict) else v[:40])
def test_bad_specs_are_a_4xx_naming_the_problem(api, body, message):
    before = api.jobs_in_store()
    response = httpx.post(f"{api.url}/v1/jobs", json=body, headers=api.auth, timeout=30)
    assert 400 <= response.status_code < 500, response.text
    problem = response.json()
    assert message in problem["detail"], problem
    assert problem["status"] == response.status_code and "Traceback" not in response.text
    assert api.jobs_in_store() == before  # nothing half-created


RAW_BODIES = [
    (json.dumps(BASE).replace('"batch_size": 8', '"batch_size": NaN'), "application/json", 422, "finite number"),
    (json.dumps(spec(final={"mode": "train", "epochs": 1, "lr": 0.25})).replace("0.25", "Infinity"),
     "application/json", 422, "final.train.lr"),
    ("[" * 100_000 + "]" * 100_000, "application/json", 400, "nested too deeply"),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "application/json", 400, "nested too deeply"),
    (b"\xff\xfe{}", "application/json", 422, "not valid JSON"),
    ("<job><space>nats-tss</space></job>", "application/xml", 422, "must be JSON, sent with Content-Type: application/json"),
    ("space=nats-tss&dataset=digits", "application/x-www-form-urlencoded", 422, "got 'application/x-www-form-urlencoded'"),
    ('--b\r\nContent-Disposition: form-data; name="space"\r\n\r\nnats-tss\r\n--b--\r\n', "multipart/form-data; boundary=b",
     422, "must be JSON"),
    (json.dumps(BASE), None, 422, "must be JSON"),  # no Content-Type at all
    ('"just a string"', "application/json", 422, "must be a JSON object"),
    ("null", "application/json", 422, "body"),
]


@pytest.mark.parametrize("content, content_type, status, message", RAW_BODIES,
                         ids=["nan", "infinity", "deep-array", "deep-object", "not-utf8", "xml", "form", "multipart",
                              "no-content-type", "json-string", "json-null"])
def test_bodies_that_are_not_a_json_spec_are_refused_with_a_message(api, content, content_type, status, message):
    headers = {**api.auth, **({"content-type": content_type} if content_type else {})}
    response = httpx.post(f"{api.url}/v1/jobs", content=content, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"], response.json()


@pytest.mark.parametrize("path, status, message", [
    ("/v1/jobs?status=' OR 1=1 --", 422, "query.status"),
    ("/v1/jobs?limit=99999999999999999999", 422, "query.limit"),
    ("/v1/jobs?offset=-1", 422, "query.offset"),
    ("/v1/jobs/1' OR '1'='1", 404, "job ids are UUIDs"),
    ("/v1/jobs/%00", 404, "job ids are UUIDs"),
    ("/v1/jobs/" + "a" * 5000, 404, "job ids are UUIDs"),
    ("/v1/jobs/1' OR '1'='1/candidates", 404, "job ids are UUIDs"),
    ("/v1/jobs/{job}/candidates?format=xml", 422, "query.format"),
    ("/v1/jobs/{job}/candidates?limit=0", 422, "query.limit"),
    ("/v1/jobs/{job}/candidates?offset=-5", 422, "query.offset"),
])
def test_bad_paths_and_queries_are_a_4xx_naming_the_problem(api, path, status, message):
    if "{job}" in path:
        job = httpx.post(f"{api.url}/v1/jobs", json=spec(seed=6), headers=api.auth, timeout=30).json()["id"]
        path = path.format(job=job)
    response = httpx.get(f"{api.url}{path}", headers=api.auth, timeout=30)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_sql_looking_values_are_only_data(api):
    """An owner filter and an Idempotency-Key that look like SQL match nothing / are stored verbatim."""
    with httpx.Client(base_url=api.url, timeout=30, headers=api.auth) as http:
        http.post("/v1/jobs", json=spec(seed=7)).raise_for_status()
        total = http.get("/v1/jobs").json()["count"]
        assert total >= 1
        assert http.get("/v1/jobs", params={"owner": "' OR '1'='1"}).json() == {"data": [], "count": 0}
        key = "'; DROP TABLE jobs; --"
        first = http.post("/v1/jobs", json=spec(seed=8), headers={"Idempotency-Key": key})
        again = http.post("/v1/jobs", json=spec(seed=8), headers={"Idempotency-Key": key})
        assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
        assert http.get("/v1/jobs").json()["count"] == total + 1  # the table is still there, one job more
    with api.stack.store.session() as s:
        assert s.scalar(select(Job.idempotency_key).where(Job.id == first.json()["id"])) == key


def test_an_idempotency_key_over_128_characters_is_refused(api):
    response = httpx.post(f"{api.url}/v1/jobs", json=spec(seed=9), timeout=30,
                          headers={**api.auth, "Idempotency-Key": "k" * 129})
    assert response.status_code == 422 and "idempotency-key" in response.json()["detail"]


def test_top_k_zero_with_a_final_stage_is_refused(api):
    response = httpx.post(f"{api.url}/v1/jobs", json=spec(top_k=0, final={"mode": "train", "epochs": 1}),
                          headers=api.auth, timeout=30)
    assert response.status_code == 422 and "top_k" in response.json()["detail"]
