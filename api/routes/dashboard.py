"""The dashboard's pages: one HTML shell for every `/ui/...` path, and its static files.

No authentication here: the pages hold no data. The browser keeps the user's token (in
sessionStorage) and its JavaScript sends it on every `/v1` request, so the same rules apply as
for any other client. Every asset ships inside the package (no CDN): the dashboard works offline.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

router = APIRouter(tags=["dashboard"], include_in_schema=False)

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
# Scripts and styles only from this server: a job name or arch string can never run as code.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/ui/static/{name}")
def asset(name: str) -> FileResponse:
    """A file of the dashboard, by name from a fixed list (nothing else on disk is reachable)."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard file {name!r}")
    return FileResponse(DASHBOARD / "static" / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/ui/{page:path}")
def page(page: str) -> FileResponse:
    """The single-page app's shell; its script renders the page the path names (or says there is none)."""
    return FileResponse(DASHBOARD / "index.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)
