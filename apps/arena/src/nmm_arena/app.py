"""The web app: FastAPI routes rendering Jinja2 templates (autoescaped), votes into `db`.

A voter is a session the server issued (a cookie signed with the database's secret; anything
else gets a new session, never a vote). Which model is shown on which side is a keyed hash of
the secret, the session and the pair, so it is random per voter, the same on the page and in
the vote, and not computable by anyone else; the vote records the models as they were shown.
Exports, per-vote rows and (unless the study makes it public) the leaderboard need the admin token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader
from starlette.concurrency import iterate_in_threadpool

from nmm_arena.board import BoardCache, board_from, csv_chunks, json_chunks
from nmm_arena.catalog import IMAGE_TYPES, Catalog, Entry
from nmm_arena.db import Database, DuplicateVote, Vote
from nmm_arena.keys import ServerKeys, new_token, token_sha256
from nmm_arena.limits import RateLimit
from nmm_arena.order import KeyedOrder
from nmm_arena.study import StudySettings
from nmm_arena.tally import Tally
from nmm_arena.transport import MAX_BODY, HeadAsGet, OriginCheck, SecurityHeaders

if TYPE_CHECKING:
    from nmm_core.pairs import Side

COOKIE = "nmm_arena_session"
ADMIN_COOKIE = "nmm_arena_admin"
MAX_COMMENT = 2000
RECENT_VOTES = 50  # rows on the admin page
LOGIN_TRIES = 20  # wrong admin tokens per address per 10 minutes
HEADERS = {
    # No scripts at all: an answer that smuggles markup past escaping still cannot run.
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on our own forms.
    "Referrer-Policy": "same-origin",
}


def shown_sides(keys: ServerKeys, session: str, entry: Entry) -> tuple[Side, Side]:
    """(left, right) as this session sees the pair: the file's order or swapped."""
    pair = entry.pair
    return (pair.right, pair.left) if keys.swapped(session, entry.key) else (pair.left, pair.right)


def create_app(catalog: Catalog, db: Database, study: StudySettings | None = None, *, admin_sha256: str,
               allowed_origins: Iterable[str] = (), max_body: int = MAX_BODY) -> FastAPI:
    """The arena over `catalog`, voting into `db` (migrated here if needed); `admin_sha256` is the
    SHA-256 of the admin token."""
    study = study or StudySettings()
    db.migrate()
    keys = ServerKeys(db.secret())
    tally = Tally().add_rows(db.iter_votes())
    board = BoardCache(tally, every_votes=study.board_every_votes, every_seconds=study.board_every_seconds)
    board.get()  # at start-up, not in the first request: it imports numpy and fills the cache
    vote_limit = RateLimit(study.votes_per_minute, 60)
    session_limit = RateLimit(study.sessions_per_address, 3600)
    login_limit = RateLimit(LOGIN_TRIES, 600)
    env = Environment(loader=PackageLoader("nmm_arena", "templates"), autoescape=True)
    css = resources.files("nmm_arena").joinpath("arena.css").read_text(encoding="utf-8")
    started = time.time()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(title="nmm arena", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
                  max_body_size=max_body)

    # The last added is the outermost: every response, refusals included, gets the headers.
    app.add_middleware(OriginCheck, allowed=allowed_origins)
    app.add_middleware(HeadAsGet)
    app.add_middleware(SecurityHeaders, headers=HEADERS)

    def address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def is_admin(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return hmac.compare_digest(token_sha256(auth[7:].strip()), admin_sha256)
        return keys.admin_cookie_valid(request.cookies.get(ADMIN_COOKIE), admin_sha256)

    def require_admin(request: Request) -> None:
        if not is_admin(request):
            raise HTTPException(401, "admin token needed (header 'Authorization: Bearer TOKEN', or log in at /admin)",
                                headers={"WWW-Authenticate": "Bearer"})

    def give_session(response: Response, request: Request, cookie: str) -> None:
        response.set_cookie(COOKIE, cookie, max_age=400 * 24 * 3600, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")

    def render(template: str, request: Request, status: int = 200, cookie: str | None = None,
               **context: object) -> HTMLResponse:
        context.setdefault("public_board", study.public_leaderboard)
        response = HTMLResponse(env.get_template(template).render(**context), status_code=status)
        if cookie:
            give_session(response, request, cookie)
        return response

    def message(request: Request, status: int, text: str) -> HTMLResponse:
        return render("message.html", request, status, text=text)

    def refused_session(request: Request) -> HTMLResponse:
        return message(request, 429, "Too many new voter sessions from your network address this hour. "
                                     "Please try again later.")

    def voter(request: Request) -> tuple[str | None, str | None]:
        """(session, cookie to set): the signed session, or a new one (None when a study code is
        needed or this address has started too many sessions this hour)."""
        session = keys.session_from_cookie(request.cookies.get(COOKIE))
        if session is not None:
            return session, None
        if study.code is not None or not session_limit.allow(address(request)):
            return None, None
        session = new_token()
        return session, keys.session_cookie(session)

    def no_session(request: Request) -> HTMLResponse:
        if study.code is not None:
            return render("join.html", request, 200)
        return refused_session(request)

    def show(request: Request, entry: Entry, session: str, cookie: str | None, voted: set[str]) -> HTMLResponse:
        left, right = shown_sides(keys, session, entry)
        image = f"/images/{entry.key}" if catalog.image_path(entry.key) else None
        judged = sum(k in catalog.entries for k in voted)
        return render("pair.html", request, cookie=cookie, entry=entry, left=left.answer, right=right.answer,
                      image=image, already=entry.key in voted, judged=judged, total=len(catalog))

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, at: int = 0) -> HTMLResponse:
        session, cookie = voter(request)
        if session is None:
            return no_session(request)
        voted = set() if cookie else db.voted_keys(keys.voter_id(session))
        if sum(k in catalog.entries for k in voted) >= len(catalog):
            return render("done.html", request, cookie=cookie, total=len(catalog))
        # This session's own order of the pairs, so early pairs do not collect all the votes; `at`
        # (where the last vote was in it) makes finding the next unjudged pair O(1) when in order.
        order = KeyedOrder(len(catalog), keys.order_key(session))
        position = at % len(catalog)
        while (key := catalog.keys[order[position]]) in voted:
            position = (position + 1) % len(catalog)
        return show(request, catalog.entries[key], session, cookie, voted)

    @app.post("/join")
    def join(request: Request, code: Annotated[str, Form(max_length=200)]) -> Response:
        if study.code is None:
            return RedirectResponse("/", status_code=303)
        if not session_limit.allow(address(request)):
            return refused_session(request)
        if not hmac.compare_digest(code.strip().encode(), study.code.encode()):
            return render("join.html", request, 403, wrong=True)
        response = RedirectResponse("/", status_code=303)
        give_session(response, request, keys.session_cookie(new_token()))
        return response

    @app.get("/pair/{key}", response_class=HTMLResponse)
    def pair_page(key: str, request: Request) -> HTMLResponse:
        entry = catalog.get(key)
        if entry is None:
            raise HTTPException(404, "unknown pair")
        session, cookie = voter(request)
        if session is None:
            return no_session(request)
        return show(request, entry, session, cookie, set() if cookie else db.voted_keys(keys.voter_id(session)))

    @app.post("/vote")
    def vote(request: Request, pair: Annotated[str, Form(max_length=64)],
             choice: Annotated[Literal["left", "right", "tie", "both_bad"], Form()],
             comment: Annotated[str, Form(max_length=MAX_COMMENT)] = "") -> Response:
        session = keys.session_from_cookie(request.cookies.get(COOKIE))
        if session is None:
            raise HTTPException(400, "no voter session this arena issued: open the arena page first (cookies needed)")
        entry = catalog.get(pair)
        if entry is None:
            raise HTTPException(404, "unknown pair")
        voter_id = keys.voter_id(session)
        if not vote_limit.allow(voter_id):
            raise HTTPException(429, f"too many votes: at most {study.votes_per_minute} a minute",
                                headers={"Retry-After": "60"})
        left, right = shown_sides(keys, session, entry)
        p = entry.pair
        try:
            db.add_vote(Vote(voter_id, entry.key, p.pair_id, entry.source, p.task, p.example_id,
                             left.model, right.model, choice, comment.strip()),
                        then=lambda v: tally.add(v.left_model, v.right_model, v.choice))
        except DuplicateVote:
            raise HTTPException(409, "you have already judged this pair") from None
        nxt = KeyedOrder(len(catalog), keys.order_key(session)).position(catalog.index[entry.key]) + 1
        return RedirectResponse(f"/?at={nxt}", status_code=303)  # committed above: the next page is safe to show

    @app.get("/images/{key}")
    def image(key: str) -> FileResponse:
        path = catalog.image_path(key)
        if path is None:
            raise HTTPException(404, "no such image")
        return FileResponse(path, media_type=IMAGE_TYPES[path.suffix.lower()])

    def board_visible(request: Request) -> bool:
        return study.public_leaderboard or is_admin(request)

    # The leaderboard routes and /healthz run on the event loop: a cached board costs no thread hop.
    @app.get("/leaderboard", response_class=HTMLResponse)
    async def board_page(request: Request) -> HTMLResponse:
        if not board_visible(request):
            return message(request, 403, "The leaderboard is private while the study runs.")
        return render("leaderboard.html", request, board=board.get()[0])

    @app.get("/leaderboard.json")
    async def board_json(request: Request) -> Response:
        if not board_visible(request):
            raise HTTPException(403, "the leaderboard is private while the study runs (admin token needed)")
        return Response(board.get()[1], media_type="application/json")

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request) -> HTMLResponse:
        if not is_admin(request):
            return render("login.html", request, 401)
        # The admin sees the board as of now: its cost grows with model pairs, not votes.
        return render("admin.html", request, board=board_from(tally.snapshot()), votes=db.recent_votes(RECENT_VOTES),
                      total=db.count(), pairs=len(catalog), catalog=catalog, study=study,
                      started=time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                            time.gmtime(started)))

    @app.post("/admin/login")
    def admin_login(request: Request, token: Annotated[str, Form(max_length=500)]) -> Response:
        if not login_limit.allow(address(request)):
            return message(request, 429, "Too many admin log-in attempts from your address; wait ten minutes.")
        if not hmac.compare_digest(token_sha256(token.strip()), admin_sha256):
            return render("login.html", request, 403, wrong=True)
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(ADMIN_COOKIE, keys.admin_cookie(admin_sha256), max_age=12 * 3600, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @app.post("/admin/logout")
    def admin_logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(ADMIN_COOKIE)
        return response

    @app.get("/export.csv")
    def export_as_csv(request: Request) -> Response:
        require_admin(request)
        return StreamingResponse(iterate_in_threadpool(csv_chunks(db.iter_votes())),
                                 media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="arena-votes.csv"'})

    @app.get("/export.json")
    def export_as_json(request: Request) -> Response:
        require_admin(request)
        return StreamingResponse(iterate_in_threadpool(json_chunks(db.iter_votes())), media_type="application/json")

    @app.get("/arena.css")
    async def stylesheet() -> Response:
        return Response(css, media_type="text/css")

    @app.get("/healthz")
    async def health() -> dict[str, int]:
        return {"pairs": len(catalog), "votes": tally.total_votes}

    return app
