"""The trading page (``docs/web.md``): the built front end in ``web-static/``, served at ``/``
on the HTTP port beside ``/api/v1``, and ``/config.json``, which tells the page the
websocket's port and scheme (the host is the one the browser reached the page on).

The files are read once, at start (a few hundred KB), and answered from memory by their
exact path: no path is ever joined to a directory, so nothing outside the built page can be
reached (``/../``, ``%2e%2e``, symlinks), and an unknown path is 404.  ``index.html`` and
``config.json`` are revalidated on every load (``no-cache``/``no-store``); the bundles under
``assets/`` have content hashes in their names and are cached for a year.  Every answer has
an ``ETag``, and ``If-None-Match`` gets 304.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gateway.sessions.http import HttpResponse

STATIC_DIR = Path(__file__).with_name("web-static")
MANIFEST = "manifest.json"  # build metadata (web/manifest.py), not served

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# The page's own code only; its websocket may be on another port (connect-src ws: wss:).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
)


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    cache_control: str
    etag: str


def _file(body: bytes, content_type: str, cache_control: str) -> _File:
    return _File(body, content_type, cache_control, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


class WebPage:
    """The page's files by URL path, and the answers to ``GET``/``HEAD`` for them."""

    def __init__(self, files: Mapping[str, _File]) -> None:
        self.files = dict(files)

    @classmethod
    def load(
        cls,
        *,
        websocket_port: int,
        websocket_scheme: str = "ws",
        directory: Path = STATIC_DIR,
    ) -> WebPage:
        """The built page in ``directory`` with the websocket's port and scheme in
        ``/config.json``.  A directory without ``index.html`` (a checkout whose page was
        never built) gives a page that says so."""
        files: dict[str, _File] = {}
        if directory.is_dir():
            for path in sorted(directory.rglob("*")):
                name = path.relative_to(directory).as_posix()
                if not path.is_file() or name == MANIFEST:
                    continue
                content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
                cache = IMMUTABLE if name.startswith("assets/") else "no-cache"
                files[f"/{name}"] = _file(path.read_bytes(), content_type, cache)
        if "/index.html" not in files:
            body = b"The web page is not built: run web/build.sh (docs/web.md).\n"
            files["/index.html"] = _file(body, CONTENT_TYPES[".txt"], "no-store")
        files["/"] = files["/index.html"]
        config = {"websocket_port": websocket_port, "websocket_scheme": websocket_scheme}
        files["/config.json"] = _file(msgspec.json.encode(config), "application/json", "no-store")
        return cls(files)

    def respond(self, method: str, path: str, headers: Mapping[str, str]) -> HttpResponse:
        """The answer to ``method path``: the file, 304, 404 or 405."""
        found = self.files.get(path)
        if found is None:
            return _error(404, "NOT_FOUND", f"no page {path[:64]!r}")
        if method not in ("GET", "HEAD"):
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"{path[:64]} answers GET, not {method[:16]}",
                (("Allow", "GET, HEAD"),),
            )
        common = (
            ("Content-Type", found.content_type),
            ("Cache-Control", found.cache_control),
            ("ETag", found.etag),
            *SECURITY_HEADERS,
        )
        if found.etag in _etags(headers.get("If-None-Match", "")):
            return HttpResponse(304, common, b"")
        return HttpResponse(200, common, b"" if method == "HEAD" else found.body)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _error(
    status: int, code: str, message: str, extra: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    headers = (("Content-Type", "application/json"), ("Cache-Control", "no-store"), *extra)
    return HttpResponse(status, headers, body)
