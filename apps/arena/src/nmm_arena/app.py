"""The web app: FastAPI routes rendering Jinja2 templates (autoescaped), votes into `db`.

A voter is a random session cookie. Which model is shown on which side is a keyed hash of the
session and the pair, so it is random per voter yet the same on the page and in the vote; the
vote records the models as they were shown.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader

from nmm_arena.board import export_csv, export_json, leaderboard
from nmm_arena.catalog import IMAGE_TYPES, Catalog, Entry
from nmm_arena.db import Database, DuplicateVote, Vote, voter_id

if TYPE_CHECKING:
    from nmm_core.pairs import Side

COOKIE = "nmm_arena_session"
MAX_COMMENT = 2000
HEADERS = {
    # No scripts at all: an answer that smuggles markup past escaping still cannot run.
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def shown_sides(token: str, entry: Entry) -> tuple[Side, Side]:
    """(left, right) as this session sees the pair: the file's order or swapped."""
    pair = entry.pair
    swapped = _digest("side", token, entry.key)[0] & 1
    return (pair.right, pair.left) if swapped else (pair.left, pair.right)


def create_app(catalog: Catalog, db: Database) -> FastAPI:
    """The arena over `catalog`, voting into `db` (migrated here if needed)."""
    db.migrate()
    env = Environment(loader=PackageLoader("nmm_arena", "templates"), autoescape=True)
    css = resources.files("nmm_arena").joinpath("arena.css").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(title="nmm arena", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def session(request: Request) -> tuple[str, bool]:
        token = request.cookies.get(COOKIE, "")
        if 20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum():
            return token, False
        return secrets.token_urlsafe(24), True

    def page(template: str, token: str, new: bool, status: int = 200, **context: object) -> HTMLResponse:
        html = env.get_template(template).render(**context)
        response = HTMLResponse(html, status_code=status)
        if new:
            response.set_cookie(COOKIE, token, max_age=400 * 24 * 3600, httponly=True, samesite="lax")
        return response

    def show(entry: Entry, token: str, new: bool, voted: set[str]) -> HTMLResponse:
        left, right = shown_sides(token, entry)
        image = f"/images/{entry.key}" if catalog.image_path(entry.key) else None
        return page("pair.html", token, new, entry=entry, left=left.answer, right=right.answer, image=image,
                    already=entry.key in voted, judged=len(voted & catalog.entries.keys()), total=len(catalog))

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        token, new = session(request)
        voted = set() if new else db.voted_keys(voter_id(token))
        todo = [k for k in catalog.entries if k not in voted]
        if not todo:
            return page("done.html", token, new, total=len(catalog))
        # A per-voter order, so early pairs do not collect all the votes.
        key = min(todo, key=lambda k: _digest("order", token, k))
        return show(catalog.entries[key], token, new, voted)

    @app.get("/pair/{key}", response_class=HTMLResponse)
    def pair_page(key: str, request: Request) -> HTMLResponse:
        entry = catalog.get(key)
        if entry is None:
            raise HTTPException(404, "unknown pair")
        token, new = session(request)
        return show(entry, token, new, set() if new else db.voted_keys(voter_id(token)))

    @app.post("/vote")
    def vote(request: Request, pair: Annotated[str, Form(max_length=64)],
             choice: Annotated[Literal["left", "right", "tie", "both_bad"], Form()],
             comment: Annotated[str, Form(max_length=MAX_COMMENT)] = "") -> Response:
        token = request.cookies.get(COOKIE)
        if not token or session(request)[1]:
            raise HTTPException(400, "no voter session: open the arena page first (cookies needed)")
        entry = catalog.get(pair)
        if entry is None:
            raise HTTPException(404, "unknown pair")
        left, right = shown_sides(token, entry)
        p = entry.pair
        try:
            db.add_vote(Vote(voter_id(token), entry.key, p.pair_id, entry.source, p.task, p.example_id,
                             left.model, right.model, choice, comment.strip()))
        except DuplicateVote:
            raise HTTPException(409, "you have already judged this pair") from None
        return RedirectResponse("/", status_code=303)  # committed above: the next page is safe to show

    @app.get("/images/{key}")
    def image(key: str) -> FileResponse:
        path = catalog.image_path(key)
        if path is None:
            raise HTTPException(404, "no such image")
        return FileResponse(path, media_type=IMAGE_TYPES[path.suffix.lower()])

    @app.get("/leaderboard", response_class=HTMLResponse)
    def board_page(request: Request) -> HTMLResponse:
        token, new = session(request)
        return page("leaderboard.html", token, new, board=leaderboard(db.votes()))

    @app.get("/leaderboard.json")
    def board_json() -> JSONResponse:
        return JSONResponse(asdict(leaderboard(db.votes())))

    @app.get("/export.csv")
    def export_as_csv() -> Response:
        return Response(export_csv(db.votes()), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="arena-votes.csv"'})

    @app.get("/export.json")
    def export_as_json() -> Response:
        return Response(export_json(db.votes()), media_type="application/json")

    @app.get("/arena.css")
    def stylesheet() -> Response:
        return Response(css, media_type="text/css")

    @app.get("/healthz")
    def health() -> dict[str, int]:
        return {"pairs": len(catalog), "votes": db.count()}

    return app
