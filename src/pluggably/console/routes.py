"""Serving the console: ``/ui/static/…`` from the package's files (ETag and
Last-Modified from Starlette's StaticFiles), and the one HTML page for every other
``/ui/…`` path, where the browser's router takes over."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from pluggably.console import api

STATIC_DIR = Path(__file__).parent / "static"

# The page loads only its own files: no inline script, nothing from elsewhere, and it
# cannot be framed. Images and 3D models come from signed artifact URLs on this origin
# (or data:/blob: URLs made in the page); model-viewer's decoders run in blob: workers.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self' data: blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    # The setup and invite links carry one-time tokens in their query string.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/")
@router.get("/ui/{path:path}")
async def console_page(path: str = "") -> FileResponse:
    """The console's single page; the browser's router reads the path."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


class _Static(StaticFiles):
    """StaticFiles that revalidate (no-cache): a server upgrade is seen at once. Every
    file gets the page's headers: /ui/static/index.html is the console page too, and
    must not be framed or run without the policy."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.update(PAGE_HEADERS)
        return response


def mount_console(app: FastAPI) -> None:
    """Static files and the console's API first: the page route's catch-all must not
    shadow them."""
    app.mount("/ui/static", _Static(directory=STATIC_DIR), name="console-static")
    app.include_router(api.router)
    app.include_router(router)
