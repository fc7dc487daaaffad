"""The console's own session: sign in and out with an HttpOnly cookie, the first-run
setup of the first administrator, and what the sign-in page needs to know.

The session cookie carries a login token (the one ``POST /v1/users/login`` returns);
any API route accepts it when the request also carries the ``X-CSRF-Token`` header
that matches it (``api/deps.py``). These four routes need no credential."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from pluggably import __version__
from pluggably.api.deps import Accounts, ConsoleSession, Csrf, DbSession, FirstRunSetup
from pluggably.api.schemas import error_responses
from pluggably.auth.browser_session import Cookie, cleared_cookies, session_cookies
from pluggably.errors import Forbidden
from pluggably.users.first_run import SetupRequest
from pluggably.users.schemas import LoginRequest, UserProfile

router = APIRouter(prefix="/ui/api", tags=["console"])


class Bootstrap(BaseModel):
    setup_required: bool = Field(
        description="No administrator exists yet: the server logged a one-time setup link."
    )
    registration_open: bool = Field(description="Accounts can be made without an invite.")
    version: str


class ConsoleSignIn(BaseModel):
    user: UserProfile
    expires_at: datetime = Field(description="When the session (its login token) ends.")


class SignedOut(BaseModel):
    status: Literal["signed_out"] = "signed_out"


def _secure(request: Request) -> bool:
    """Over https (as uvicorn sees it: X-Forwarded-Proto counts from trusted proxies
    only), the cookies are Secure."""
    return request.url.scheme == "https"


def _refuse_other_sites(request: Request) -> None:
    """Login CSRF: another site's page must not sign the browser in to an account of
    its choosing (whose chat history it can then read). Browsers say where a request
    came from in Sec-Fetch-Site, which proxies pass on untouched (unlike Host); other
    clients send none. This does not rest on FastAPI refusing bodies without a JSON
    Content-Type (0.132 and later): pyproject allows older ones."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("Sign in from the console's own page.")


def _set(response: Response, cookies: list[Cookie]) -> None:
    for cookie in cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            path=cookie.path,
            secure=cookie.secure,
            httponly=cookie.http_only,
            samesite="strict",
        )


@router.get("/bootstrap", response_model=Bootstrap)
async def bootstrap(accounts: Accounts, first_run: FirstRunSetup) -> Bootstrap:
    """What the sign-in page shows before anyone signs in."""
    return Bootstrap(
        setup_required=await first_run.required(),
        registration_open=accounts.registration_open,
        version=__version__,
    )


@router.post("/session", response_model=ConsoleSignIn, responses=error_responses(401, 403, 429))
async def sign_in(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: DbSession,
    accounts: Accounts,
    csrf: Csrf,
) -> ConsoleSignIn:
    """Sign in with a username (or email) and password. Sets the HttpOnly session
    cookie ``pluggably_session`` and the readable ``pluggably_csrf`` cookie, whose value
    the console echoes in ``X-CSRF-Token``. Failures are throttled like
    ``POST /v1/users/login`` (429). A browser's request from another site is 403."""
    _refuse_other_sites(request)
    address = request.client.host if request.client else "unknown"
    issued, user = await accounts.login(session, body, address)
    cookies = session_cookies(
        issued.token, csrf.issue(issued.token), issued.expires_at, secure=_secure(request)
    )
    _set(response, cookies)
    return ConsoleSignIn(user=UserProfile.model_validate(user), expires_at=issued.expires_at)


@router.delete("/session", response_model=SignedOut, responses=error_responses(403))
async def sign_out(
    request: Request,
    response: Response,
    principal: ConsoleSession,
    session: DbSession,
    accounts: Accounts,
) -> SignedOut:
    """Sign out: revokes the session's login token and clears both cookies. Succeeds
    without a session too; a session cookie without its ``X-CSRF-Token`` is 403."""
    if principal is not None and principal.via == "login":
        await accounts.logout(session, principal)
    _set(response, cleared_cookies(secure=_secure(request)))
    return SignedOut()


@router.post(
    "/setup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserProfile,
    responses=error_responses(400, 409),
)
async def setup(body: SetupRequest, first_run: FirstRunSetup) -> UserProfile:
    """Create the first administrator with the token of the setup link the server
    logged at its first start (API.md §10). Refused (400 ``invalid_invite``) with a
    wrong token or once an administrator exists; a reserved username is 409, a
    password outside the policy 422. Does not sign in."""
    return UserProfile.model_validate(await first_run.create_admin(body))
