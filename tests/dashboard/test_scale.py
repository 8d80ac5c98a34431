"""The dashboard stays fast with 10,000 jobs and a 15,625-candidate job: one grouped progress query per
page, server-side paging, and a histogram instead of every score."""
from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import event

from tests.support.seed import seed_big_job, seed_jobs

pytestmark = pytest.mark.timeout(300)

FAST = 1.0  # seconds for any one dashboard request (they take tens of milliseconds here)


def test_a_page_of_jobs_costs_the_same_few_queries_however_long(store):
    from models.queries import job_summary, list_jobs, progress

    seed_jobs(store, 40, "ann", candidates_each=3)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    costs = {}
    for limit in (5, 40):
        statements.clear()
        with store.session() as session:
            jobs, total = list_jobs(session, owner="ann", limit=limit)
            summaries = [job_summary(job) for job in jobs]
        costs[limit] = len(statements)
        assert total == 40 and len(summaries) == limit
    assert costs[5] == costs[40] <= 4, f"queries per page: {costs}"  # count, page, candidates, trainings
    with store.session() as session:  # and the grouped counts are the per-job counts
        for summary in summaries:
            assert summary["progress"] == progress(session, summary["id"])
            assert summary["progress"]["candidates"] == 3


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    """An embedded server whose store already holds 10,000 finished jobs and one job of every cell."""
    from tests.support.servers import InProcessServer, clean_env
    from models import Store

    home = tmp_path_factory.mktemp("big-home")
    store = Store(f"sqlite:///{home / 'knas.db'}")
    try:
        per_status = seed_jobs(store, 10_000, "local")
        big, _ = seed_big_job(store, "local")
    finally:
        store.dispose()
    server = InProcessServer(clean_env(KNAS_HOME=str(home))).start()
    yield server, per_status, big
    server.stop()


def fastest(server, path: str, repeat: int = 3) -> tuple[float, httpx.Response]:
    best, answer = float("inf"), None
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        for _ in range(repeat):
            start = time.perf_counter()
            answer = client.get(path)
            best = min(best, time.perf_counter() - start)
            assert answer.status_code == 200, answer.text
    return best, answer


def test_api_pages_stay_fast_at_scale(big_server):
    server, per_status, big = big_server
    for path, check in (
        ("/v1/jobs?limit=25", lambda body: body["count"] == 10_001 and len(body["data"]) == 25),
        ("/v1/jobs?limit=25&offset=9976", lambda body: len(body["data"]) == 25),
        ("/v1/jobs?limit=25&status=failed", lambda body: body["count"] == per_status["failed"]),
        (f"/v1/jobs/{big}/candidates?limit=25&offset=15600", lambda body: body["data"][0]["rank"] == 15601),
        (f"/v1/jobs/{big}/histogram?bins=30", lambda body: body["count"] == 15_625),
        (f"/v1/jobs/{big}/trainings", lambda body: body["data"] == []),
    ):
        seconds, answer = fastest(server, path)
        assert check(answer.json()), path
        assert seconds < FAST, f"{path} took {seconds:.3f} s"


def test_browser_pages_through_10000_jobs_and_15625_candidates(big_server, open_browser):
    server, per_status, big = big_server
    browser = open_browser(server, "scale")
    browser.login(server.token)
    browser.wait_text("#jobs-count", "1–25 of 10,001")
    browser.find("#jobs-next").click()
    browser.wait_text("#jobs-count", "26–50 of 10,001")
    browser.open("/ui/jobs?offset=9975")
    browser.wait_text("#jobs-count", "9,976–10,000 of 10,001")
    assert browser.find("#jobs-next").is_enabled()
    browser.open("/ui/jobs?offset=10000")
    browser.wait_text("#jobs-count", "10,001–10,001 of 10,001")
    assert not browser.find("#jobs-next").is_enabled()

    from selenium.webdriver.support.ui import Select

    Select(browser.find("#status-filter")).select_by_value("failed")
    browser.wait_text("#jobs-count", f"1–25 of {per_status['failed']:,}")
    assert {r.get_attribute("data-status") for r in browser.all("tr.job-row")} == {"failed"}
    browser.screenshot("jobs-filtered")

    browser.open(f"/ui/jobs/{big}")
    browser.wait_text("#candidates-count", "1–25 of 15,625")
    browser.find("#candidates-next").click()
    browser.wait_text("#candidates-count", "26–50 of 15,625")
    assert browser.text("#candidates-table tbody tr td").strip() == "26"
    bars = browser.all("#histogram svg rect.hbar")
    assert len(bars) == 30
    assert sum(int(b.get_attribute("textContent").rsplit(": ", 1)[1]) for b in bars) == 15_625
    browser.screenshot("big-job", full_page=True)
