"""The dashboard's endpoints over HTTP (no browser): pages, assets, histogram, trainings, one candidate, /v1/me."""
from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.paths import REPO
from tests.support.seed import seed_big_job, seed_trained_job

DASHBOARD = REPO / "api" / "dashboard"


@pytest.fixture(scope="module")
def seeded(dashboard_server):
    """Jobs written straight into the server's store: a 15,625-candidate one and a trained one, both of 'ann'."""
    from models import Store

    ann = dashboard_server.add_user("ann")
    store = Store(f"sqlite:///{Path(dashboard_server.env['KNAS_HOME']) / 'knas.db'}")
    try:
        big, scores = seed_big_job(store, "ann")
        trained, candidates = seed_trained_job(store, "ann", accuracies=[70.0, 90.0, 80.0])
    finally:
        store.dispose()
    return {"token": ann, "big": big, "scores": scores, "trained": trained, "candidates": candidates}


def get(server, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(server.url + path, headers=headers, timeout=30, **kwargs)


# ---------------------------------------------------------------- pages and assets

def test_pages_need_no_token_and_forbid_foreign_scripts(dashboard_server):
    root = get(dashboard_server, "/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    for path in ("/ui/", "/ui/jobs", "/ui/jobs/anything/candidates/3", "/ui/workers", "/ui/login"):
        page = get(dashboard_server, path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/ui/static/app.js"' in page.text
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        asset = get(dashboard_server, f"/ui/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.content == (DASHBOARD / "static" / name).read_bytes()
    assert get(dashboard_server, "/ui/static/nope.js").status_code == 404
    shell = (DASHBOARD / "index.html").read_bytes()
    for name in ("..%2F..%2Fmain.py", "%2e%2e%2fdashboard.py", "..%2Findex.html"):  # never a file outside the list
        answer = get(dashboard_server, f"/ui/static/{name}")
        assert answer.status_code == 404 or answer.content == shell, name


def test_every_asset_ships_in_the_package_and_nothing_loads_from_elsewhere():
    """No CDN: the shell and its files reference only same-origin paths (the SVG namespace is a name, not a load)."""
    from api.routes.dashboard import ASSETS

    shipped = {p.name for p in (DASHBOARD / "static").iterdir()}
    assert shipped == set(ASSETS), "every static file is served, and only those"
    for path in [DASHBOARD / "index.html", *(DASHBOARD / "static").iterdir()]:
        urls = set(re.findall(r"https?://[^\s\"'`)]+", path.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, f"{path.name} loads from elsewhere: {urls}"
    html = (DASHBOARD / "index.html").read_text()
    assert set(re.findall(r'(?:src|href)="/ui/static/([^"]+)"', html)) == set(ASSETS)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"dashboard/index.html", "dashboard/static/*"' in pyproject, "the files are package data"


# ---------------------------------------------------------------- the caller

def test_me_names_the_tokens_owner(dashboard_server, seeded):
    assert get(dashboard_server, "/v1/me").status_code == 401
    assert get(dashboard_server, "/v1/me", seeded["token"]).json() == {
        "name": "ann", "admin": False, "max_jobs": None, "max_candidates": None}
    assert get(dashboard_server, "/v1/me", dashboard_server.token).json()["admin"] is True


# ---------------------------------------------------------------- histogram

def test_histogram_counts_every_score_once_as_numpy_bins_them(dashboard_server, seeded):
    job, scores = seeded["big"], seeded["scores"]
    linear = get(dashboard_server, f"/v1/jobs/{job}/histogram?bins=30&scale=linear", seeded["token"]).json()
    counts, edges = np.histogram(scores, bins=30)
    assert linear["scale"] == "linear" and [b["count"] for b in linear["bins"]] == counts.tolist()
    assert [b["lo"] for b in linear["bins"]] == pytest.approx(edges[:-1].tolist())
    assert (linear["count"], linear["missing"], linear["min"], linear["max"]) == (15625, 0, min(scores), max(scores))
    ranked = sorted(scores, reverse=True)
    assert linear["threshold"] == ranked[1]  # top_k = 2: the second best score

    auto = get(dashboard_server, f"/v1/jobs/{job}/histogram?bins=40", seeded["token"]).json()
    log_counts, log_edges = np.histogram(np.log10(scores), bins=40)
    assert auto["scale"] == "log", "log-normal scores over many decades are binned in log10"
    assert [b["count"] for b in auto["bins"]] == log_counts.tolist()
    assert [math.log10(b["lo"]) for b in auto["bins"]] == pytest.approx(log_edges[:-1].tolist())


def test_histogram_of_a_job_being_scored_counts_the_rest_as_missing(dashboard_server, seeded):
    trained = get(dashboard_server, f"/v1/jobs/{seeded['trained']}/histogram?bins=5", seeded["token"]).json()
    assert trained["scale"] == "linear" and trained["count"] == 5 and trained["missing"] == 0
    assert sum(b["count"] for b in trained["bins"]) == 5
    for bad in ("bins=0", "bins=201", "scale=cubic"):
        assert get(dashboard_server, f"/v1/jobs/{seeded['trained']}/histogram?{bad}",
                   seeded["token"]).status_code == 422, bad


# ---------------------------------------------------------------- trainings and one candidate

def test_trainings_give_every_epoch_and_the_rank_correlation(dashboard_server, seeded):
    from scipy.stats import kendalltau

    body = get(dashboard_server, f"/v1/jobs/{seeded['trained']}/trainings", seeded["token"]).json()
    trained = [c for c in seeded["candidates"] if "valid_acc" in c]
    assert [t["candidate_id"] for t in body["data"]] == [c["id"] for c in trained]
    assert all(len(t["epochs"]) == 3 and t["epochs"][-1]["valid_acc"] == t["valid_acc"] for t in body["data"])
    tau = kendalltau([c["score"] for c in trained], [c["valid_acc"] for c in trained]).statistic
    assert body["n"] == 3 and body["kendall"] == pytest.approx(tau, abs=1e-4)
    assert body["kendall"] == pytest.approx(-1 / 3, abs=1e-4)  # scores 10>9>8, accuracies 70<90>80: 1 pair of 3 agrees
    untrained = get(dashboard_server, f"/v1/jobs/{seeded['big']}/trainings", seeded["token"]).json()
    assert untrained == {"data": [], "n": 0, "kendall": None}


def test_candidate_detail_and_its_training(dashboard_server, seeded):
    first, last = seeded["candidates"][0], seeded["candidates"][-1]
    body = get(dashboard_server, f"/v1/jobs/{seeded['trained']}/candidates/{first['id']}", seeded["token"]).json()
    assert (body["arch"], body["rank"], body["scores"]) == (first["arch"], 1, {"mgm": 10.0, "params": 100})
    assert body["training"]["valid_acc"] == first["valid_acc"] and len(body["training"]["epochs"]) == 3
    untrained = get(dashboard_server, f"/v1/jobs/{seeded['trained']}/candidates/{last['id']}", seeded["token"])
    assert untrained.json()["training"] is None
    other_job = get(dashboard_server, f"/v1/jobs/{seeded['big']}/candidates/{first['id']}", seeded["token"])
    assert other_job.status_code == 404 and "has no candidate" in other_job.json()["detail"]


def test_another_users_job_is_unknown_on_every_view(dashboard_server, seeded):
    bob = dashboard_server.add_user("bob-views")
    job, candidate = seeded["trained"], seeded["candidates"][0]["id"]
    for path in (f"/v1/jobs/{job}/histogram", f"/v1/jobs/{job}/trainings", f"/v1/jobs/{job}/candidates/{candidate}"):
        assert get(dashboard_server, path).status_code == 401, path
        assert get(dashboard_server, path, bob).status_code == 404, path
        assert get(dashboard_server, path, dashboard_server.token).status_code == 200, path  # admins see all
    assert get(dashboard_server, "/v1/jobs/not-a-uuid/histogram", bob).status_code == 404
