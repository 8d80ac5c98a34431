"""422s that would reveal the server's directories show them to admins only."""
from __future__ import annotations

import httpx

from tests.support.image_folders import make_image_folder


def test_server_paths_in_422s_are_for_admins_only(start_server, tmp_path):
    data = tmp_path / "data"
    folder = make_image_folder(data / "cells", per_class=2, classes=2, with_test=False)
    server = start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATA_DIR=str(data))
    bob = server.add_user("bob")
    spec = {"space": "nats-tss", "dataset": "cifar10", "candidates": {"strategy": "random", "n": 2},
            "proxy": {"name": "mgm", "batch_size": 8}, "top_k": 1, "final": {"mode": "none"}}
    admin_view = httpx.post(f"{server.url}/v1/jobs", json=spec, headers=server.auth, timeout=30)
    user_view = httpx.post(f"{server.url}/v1/jobs", json=spec, headers={"Authorization": f"Bearer {bob}"}, timeout=30)
    assert admin_view.status_code == user_view.status_code == 422
    assert str(data) in admin_view.json()["detail"]
    assert str(data) not in user_view.json()["detail"] and "<KNAS_DATA_DIR>" in user_view.json()["detail"]
    # a registered folder that changed: the admin sees where, bob sees which dataset
    assert httpx.post(f"{server.url}/v1/datasets", json={"name": "cells", "path": str(folder)}, headers=server.auth,
                      timeout=60).status_code == 201
    next((folder / "train").iterdir()).joinpath("extra.png").write_bytes((folder / "train").iterdir().__next__()
                                                                          .iterdir().__next__().read_bytes())
    changed = httpx.post(f"{server.url}/v1/jobs", json={**spec, "dataset": "cells"},
                         headers={"Authorization": f"Bearer {bob}"}, timeout=30)
    assert changed.status_code == 422 and "changed" in changed.json()["detail"]
    assert str(tmp_path) not in changed.json()["detail"], changed.json()["detail"]
