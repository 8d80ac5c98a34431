"""The dashboard in a real browser against a live `knas serve`: sign in, submit, watch, inspect, cancel."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil

import httpx
import pytest

from tests.dashboard.browser_helpers import DOCS_SCREENSHOT, UPDATE_SCREENSHOT
from tests.support.specs import job_spec
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(600)


def fill(browser, css: str, value) -> None:
    field = browser.find(css)
    field.clear()
    field.send_keys(str(value))


def choose(browser, css: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find(css)).select_by_value(value)


def api_get(server, path: str, token: str | None = None):
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token or server.token}"}, timeout=30)
    response.raise_for_status()
    return response


def test_submit_watch_inspect_download(dashboard_server, open_browser, tmp_path):
    """Sign in with the token, submit from the form, watch 100 %, read the plots, open a candidate, download."""
    server = dashboard_server
    browser = open_browser(server, "main")
    browser.open("/")  # -> /ui/ -> the login page (no token in this tab yet)
    browser.find("#token")
    assert browser.driver.current_url.startswith(server.url + "/ui/login")
    browser.login(server.token)
    browser.find("#jobs-table")
    assert browser.text("#whoami") == "local (admin)"
    assert browser.token_in_tab() == server.token

    big = UPDATE_SCREENSHOT  # the docs picture wants a fuller job than the test needs
    n, top_k, epochs = (60, 5, 2) if big else (6, 2, 1)
    browser.find("#new-job-link").click()
    choose(browser, "#f-dataset", "digits")
    choose(browser, "#f-proxy", "mgm")
    fill(browser, "#f-n", n)
    fill(browser, "#f-probe", 8)
    fill(browser, "#f-repeats", 2)  # two scores per candidate: a spread, and a verdict on the top-k cut
    fill(browser, "#f-topk", top_k)
    choose(browser, "#f-final", "train")
    fill(browser, "#f-epochs", epochs)
    fill(browser, "#f-seed", 11)
    browser.find("#submit-job").click()

    browser.find(".job[data-id]")
    job_id = browser.find(".job[data-id]").get_attribute("data-id")
    job = api_get(server, f"/v1/jobs/{job_id}").json()
    assert (job["n_candidates"], job["top_k"], job["spec"]["final"], job["spec"]["proxy"]["repeats"]) == (
        n, top_k, {"mode": "train", "epochs": epochs, "batch_size": None, "lr": 0.1, "keep_checkpoints": False,
                   "retrain_epochs": 0}, 2)
    browser.screenshot("submitted")

    browser.wait_text("#progress-text", "100 %", timeout=540 if big else 180)
    browser.wait_text("#job-status", "succeeded")
    job = api_get(server, f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"]["scored"] == n
    assert browser.text("#cut") == job["result"]["cut"]["note"]

    # The histogram's bars add up to the scored candidates (read back from the SVG's tooltips).
    browser.wait_text("#histogram p", lambda text: text.startswith(f"{n} scores"))
    bars = browser.all("#histogram svg rect.hbar")
    hist = api_get(server, f"/v1/jobs/{job_id}/histogram?bins=30").json()
    assert len(bars) == len(hist["bins"]) and sum(b["count"] for b in hist["bins"]) == n
    counts = [int(b.get_attribute("textContent").rsplit(": ", 1)[1]) for b in bars]
    assert counts == [b["count"] for b in hist["bins"]]
    assert any(float(b.get_attribute("height")) > 0 for b in bars)

    # Training curves: one series per top-k candidate, one marker per epoch; the scatter has a point each.
    trainings = api_get(server, f"/v1/jobs/{job_id}/trainings").json()
    assert [t["status"] for t in trainings["data"]] == ["done"] * top_k
    browser.find("#curves svg")
    assert len(browser.all("#curves svg g.series")) == top_k
    assert len(browser.all("#curves svg circle.marker")) == top_k * epochs
    assert len(browser.all("#scatter svg circle.point")) == top_k
    kendall = browser.text("#kendall")
    assert f"n = {top_k}" in kendall, kendall
    from scipy.stats import kendalltau

    tau = kendalltau([t["score"] for t in trainings["data"]], [t["valid_acc"] for t in trainings["data"]]).statistic
    if tau == tau:  # defined (no tie in accuracy): the page shows it
        assert trainings["kendall"] == pytest.approx(tau, abs=1e-4)
        assert float(re.search(r"τ = (-?[0-9.]+)", kendall).group(1)) == pytest.approx(tau, abs=5e-3), kendall

    # The ranked table is the API's ranking, best first.
    ranking = api_get(server, f"/v1/jobs/{job_id}/candidates?limit=25").json()["data"]
    browser.wait_text("#candidates-count", lambda text: text.endswith(f"of {n}"))
    rows = browser.all("#candidates-table tbody tr.candidate-row")
    assert [int(r.get_attribute("data-id")) for r in rows] == [c["id"] for c in ranking][:25]
    shot = browser.screenshot("job-page", full_page=True)
    if UPDATE_SCREENSHOT:
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    # Downloads go through fetch with the token: the saved CSV is the API's CSV.
    browser.find("#download-csv").click()
    saved = browser.downloads / f"knas-{job_id}-candidates.csv"
    wait_for(lambda: saved.exists() and saved.stat().st_size > 0, 20, what=f"download {saved.name}")
    expected = api_get(server, f"/v1/jobs/{job_id}/candidates?format=csv&limit=10000").text
    assert list(csv.DictReader(io.StringIO(saved.read_text()))) == list(csv.DictReader(io.StringIO(expected)))
    browser.find("#download-json").click()
    saved = browser.downloads / f"knas-{job_id}-candidates.json"
    wait_for(lambda: saved.exists() and saved.stat().st_size > 0, 20, what=f"download {saved.name}")
    assert json.loads(saved.read_text()) == api_get(server, f"/v1/jobs/{job_id}/candidates?limit=10000").json()

    # The winner as a model: the card's facts on the page, and the zip the API serves, saved from the button.
    card = api_get(server, f"/v1/jobs/{job_id}/card").json()
    browser.wait_text("#model-test-acc", f"{card['metrics']['test_acc']:.2f} %")
    assert card["reproduce"] in browser.text("#model-card")
    browser.find("#download-model").click()
    saved = browser.downloads / f"knas-{job_id}-model.zip"
    wait_for(lambda: saved.exists() and saved.stat().st_size == job["result"]["export"]["bytes"], 30,
               what=f"download {saved.name}")
    import zipfile

    assert {"model.torchscript.pt", "model.onnx", "card.json"} <= set(zipfile.ZipFile(saved).namelist())

    # A candidate: click the best row; its arch, proxy scores, params and training curve.
    best = ranking[0]
    browser.find(f"#candidates-table tr.candidate-row[data-id='{best['id']}'] td.arch").click()
    assert browser.text("#candidate-arch") == best["arch"]
    assert browser.text("#candidate-params") == f"{best['params']:,}"
    assert "±" in browser.text("#candidate-score") and best["score_std"] is not None
    assert browser.text("#proxy-scores").startswith("mgm")
    assert len(browser.all("#cell-edges tbody tr")) == 6  # NAS-Bench-201 cells have six edges
    browser.find("#candidate-curve svg")
    assert len(browser.all("#candidate-curve svg circle.marker")) == epochs
    browser.screenshot("candidate", full_page=True)

    # Back to the list: the job is there, finished, with the winner's score.
    browser.find("#nav a[href='/ui/jobs']").click()
    row = browser.find(f"tr.job-row[data-id='{job_id}']")
    assert row.get_attribute("data-status") == "succeeded"
    assert "100 %" in row.text


def test_cancel_a_running_job_from_its_page(dashboard_server, open_browser):
    server = dashboard_server
    with server.client() as client:  # long enough to be cancelled while it scores: 400 candidates
        job = client.submit(job_spec(n=400, seed=3))
    browser = open_browser(server, "cancel")
    browser.login(server.token)
    browser.find(f"tr.job-row[data-id='{job['id']}'] a").click()
    browser.wait_text("#job-status", lambda status: status in ("queued", "scoring"))
    cancel = browser.find("#cancel-button")
    assert cancel.is_enabled()
    cancel.click()
    browser.wait_text("#job-status", "cancelled")
    assert api_get(server, f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert not browser.find("#cancel-button").is_enabled()
    browser.screenshot("cancelled")


def test_users_see_only_their_own_jobs(dashboard_server, open_browser):
    server = dashboard_server
    tokens = {name: server.add_user(name) for name in ("alice", "bob")}
    jobs = {}
    for name, token in tokens.items():
        with server.client(token=token) as client:
            jobs[name] = client.submit(job_spec(n=2, seed=len(name)))["id"]
    for name, other in (("alice", "bob"), ("bob", "alice")):
        browser = open_browser(server, name)
        browser.login(tokens[name])
        browser.find(f"tr.job-row[data-id='{jobs[name]}']")
        assert browser.text("#whoami") == name
        listed = [r.get_attribute("data-id") for r in browser.all("tr.job-row")]
        assert listed == [jobs[name]], f"{name} sees {listed}"
        browser.screenshot("own-jobs")
        browser.open(f"/ui/jobs/{jobs[other]}")  # someone else's job is as unknown as a made-up id
        assert browser.text("#error-page h1") == "Not found"
        assert jobs[other] in browser.text("#error-detail")
    admin = open_browser(server, "admin")
    admin.login(server.token)
    for job_id in jobs.values():
        admin.find(f"tr.job-row[data-id='{job_id}']")


def test_error_pages_bad_token_unknown_job_and_server_down(start_server, open_browser, tmp_path):
    server = start_server(KNAS_HOME=str(tmp_path / "home"))
    browser = open_browser(server, "errors")
    browser.login("knas_not-a-real-token")
    assert "not valid" in browser.text("#login-error")
    assert browser.token_in_tab() is None

    revoked = server.add_user("carol")
    from models import Store
    from models.users import revoke_user

    store = Store(f"sqlite:///{tmp_path / 'home' / 'knas.db'}")
    try:
        assert revoke_user(store, "carol")
    finally:
        store.dispose()
    browser.login(revoked)
    assert "revoked" in browser.text("#login-error")

    browser.login(server.token)
    browser.find("#jobs-table")
    browser.open("/ui/jobs/00000000-0000-0000-0000-000000000000")
    assert browser.text("#error-page h1") == "Not found"
    assert "no job" in browser.text("#error-detail")
    browser.open("/ui/nowhere")
    assert browser.text("#error-page h1") == "Not found"
    browser.screenshot("not-found")

    browser.open("/ui/jobs")
    browser.find("#jobs-table")
    server.stop()
    browser.find("#nav a[href='/ui/workers']").click()  # the app navigates without reloading the page
    assert "cannot reach the knas server" in browser.text("#banner", timeout=20)
    browser.screenshot("server-down")


def test_workers_page_shows_device_job_and_heartbeat(dashboard_server, open_browser):
    from datetime import timedelta
    from pathlib import Path

    from models import Store, Worker, utcnow

    server = dashboard_server
    with server.client() as client:
        job_id = client.submit(job_spec(n=2, seed=5))["id"]
    store = Store(f"sqlite:///{Path(server.env['KNAS_HOME']) / 'knas.db'}")
    try:  # what two Celery workers' heartbeats would have written
        with store.session() as session:
            session.add(Worker(name="gpu0@node1", hostname="node1", device="cuda:0", current_job=job_id,
                               last_seen=utcnow()))
            session.add(Worker(name="cpu@node2", hostname="node2", device="cpu", current_job=None,
                               last_seen=utcnow() - timedelta(hours=2)))
    finally:
        store.dispose()
    browser = open_browser(server, "workers")
    browser.login(server.token)
    browser.find("#nav a[href='/ui/workers']").click()
    busy = browser.find("tr.worker-row[data-name='gpu0@node1']")
    assert "cuda:0" in busy.text and f"job {job_id[:8]}" in busy.text and "alive" in busy.text
    idle = browser.find("tr.worker-row[data-name='cpu@node2']")
    assert "idle" in idle.text and "silent" in idle.text and "2.0 h ago" in idle.text
    browser.screenshot("workers")
    busy.find_element("css selector", "a").click()
    assert browser.find(".job[data-id]").get_attribute("data-id") == job_id


def test_an_evolution_job_from_the_form_plots_fitness_per_generation(dashboard_server, open_browser):
    server = dashboard_server
    browser = open_browser(server, "evolution")
    browser.open("/")
    browser.login(server.token)
    browser.find("#new-job-link").click()
    choose(browser, "#f-dataset", "digits")
    choose(browser, "#f-proxy", "mgm")
    choose(browser, "#f-strategy", "evolution")
    fill(browser, "#f-n", 4)
    fill(browser, "#f-generations", 2)
    fill(browser, "#f-children", 3)
    fill(browser, "#f-probe", 8)
    fill(browser, "#f-topk", 1)
    choose(browser, "#f-final", "none")
    fill(browser, "#f-seed", 5)
    browser.find("#submit-job").click()
    job_id = browser.find(".job[data-id]").get_attribute("data-id")
    job = api_get(server, f"/v1/jobs/{job_id}").json()
    assert job["spec"]["candidates"]["strategy"] == "evolution" and job["n_candidates"] == 10
    browser.wait_text("#job-status", "succeeded", timeout=180)
    generations = api_get(server, f"/v1/jobs/{job_id}/generations").json()
    assert [g["generation"] for g in generations["data"]] == [0, 1, 2]
    assert [g["candidates"] for g in generations["data"]] == [4, 3, 3]
    browser.find("#generations svg")
    wait_for(lambda: len(browser.all("#generations svg g.series.best circle.marker")) == 3, 30,
               what="one best-fitness marker per generation")
    assert len(browser.all("#generations svg g.series.median circle.marker")) == 3
    browser.screenshot("evolution", full_page=True)
