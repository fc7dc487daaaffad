"""``pluggably users …``: accounts, invites, and what administrators do to accounts
(list, disable, limits), on the configured database itself: an operator runs them on
the server host without a token. A running server sees a disable on the account's next
request and a limit change within its caller cache's 2 seconds."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from pluggably.cli.local import fail, settings_from, with_services
from pluggably.usage.limits import Limits
from pluggably.users.schemas import UserSummary, UserUpdate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pluggably.container import Container

users_app = typer.Typer(
    help="Accounts, invites, and administering accounts (on this host's database).",
    no_args_is_help=True,
)

NameOrId = Annotated[str, typer.Argument(help="The account's username, email or id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead.")]


def _invalid(exc: ValidationError) -> typer.Exit:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return fail(f"{where}: {message}" if where else message)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="PLUGGABLY_NEW_PASSWORD"
        ),
    ] = "",
) -> None:
    """Create an account (the first admin, typically). No invite needed."""
    from pluggably.users.schemas import RegisterRequest

    try:
        body = RegisterRequest(username=username, email=email, password=password)
    except ValidationError as exc:
        raise fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    async def work(container: Container, session: AsyncSession) -> str:
        user = await container.accounts.create_user(
            session,
            username=body.username,
            email=body.email,
            password=password,
            role="admin" if admin else "user",
        )
        return user.id

    user_id = with_services(settings_from(), work)
    typer.echo(f"created {'admin' if admin else 'user'} {username} ({user_id})")


@users_app.command("invite")
def users_invite(
    email: Annotated[str | None, typer.Option(help="Only this email may use it.")] = None,
    expires_days: Annotated[int | None, typer.Option(min=1, max=365)] = None,
) -> None:
    """Create a single-use invite and print its secret (shown only once)."""

    from pluggably.users.schemas import InviteCreate

    try:
        body = InviteCreate(email=email, expires_days=expires_days)
    except ValidationError as exc:
        raise fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    async def work(container: Container, session: AsyncSession) -> str:
        secret, _ = await container.invites.create(
            session, container.admin_user_id, body.email, body.expires_days
        )
        return secret

    typer.echo(with_services(settings_from(), work))


def _table(users: list[UserSummary]) -> None:
    rows = [("id", "username", "role", "disabled", "last login")]
    for user in users:
        login = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        name = user.username or user.email or "-"
        rows.append((user.id, name, user.role, "yes" if user.disabled else "no", login))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


@users_app.command("list")
def users_list(
    q: Annotated[
        str | None, typer.Option("--q", help="Only accounts whose name or email contains this.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Every account, oldest first: id, username, role, disabled, last login."""
    from pluggably.users.schemas import UserQuery

    async def work(container: Container, session: AsyncSession) -> list[UserSummary]:
        admin, found, cursor = container.user_admin, [], None
        while True:
            page = await admin.page(session, UserQuery(limit=200, cursor=cursor, q=q or None))
            found += page.users
            if (cursor := page.next_cursor) is None:
                return found

    users = with_services(settings_from(), work)
    if as_json:
        typer.echo(json.dumps([user.model_dump(mode="json") for user in users], indent=2))
    else:
        _table(users)


def _set_disabled(name_or_id: str, disabled: bool) -> UserSummary:
    patch = UserUpdate(disabled=disabled)

    async def work(container: Container, session: AsyncSession) -> UserSummary:
        admin = container.user_admin
        user = await admin.update(session, None, await admin.find(session, name_or_id), patch)
        return UserSummary.of(user)

    return with_services(settings_from(), work)


@users_app.command("disable")
def users_disable(
    name_or_id: NameOrId,
    enable: Annotated[
        bool, typer.Option("--enable", help="Enable the account again instead.")
    ] = False,
) -> None:
    """Disable an account (or --enable it again).

    Its login and API tokens stop working on their next request, and it cannot log in.
    Refused for the last administrator and for the server's own admin row."""
    user = _set_disabled(name_or_id, not enable)
    typer.echo(f"{'enabled' if enable else 'disabled'} {user.username or user.email} ({user.id})")


@users_app.command("enable")
def users_enable(name_or_id: NameOrId) -> None:
    """Enable a disabled account again; its tokens work again."""
    user = _set_disabled(name_or_id, False)
    typer.echo(f"enabled {user.username or user.email} ({user.id})")


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class LimitName(StrEnum):
    rpm = "rpm"
    tpm = "tpm"
    max_concurrent = "max_concurrent"
    budget_usd = "budget_usd"
    budget_period = "budget_period"
    models = "models"


def _shown(value: object) -> str:
    if value is None:
        return "-"
    return ", ".join(value) if isinstance(value, list) else str(value)


def _limits_lines(user: UserSummary, limits: Limits, effective: Limits) -> None:
    typer.echo(f"limits of {user.username or user.email} ({user.id})")
    rows = [("", "set", "in effect")]
    rows += [(f, _shown(getattr(limits, f)), _shown(getattr(effective, f))) for f in LimitName]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _change(
    rpm: int | None,
    tpm: int | None,
    max_concurrent: int | None,
    budget_usd: float | None,
    budget_period: Period | None,
    models: str | None,
    unset: list[LimitName],
) -> Limits:
    """The fields given (an --unset one as null), validated as a Limits."""
    given: dict[str, object] = {
        "rpm": rpm,
        "tpm": tpm,
        "max_concurrent": max_concurrent,
        "budget_usd": budget_usd,
        "budget_period": budget_period.value if budget_period else None,
        "models": [p.strip() for p in models.split(",") if p.strip()]
        if models is not None
        else None,
    }
    change = {name: value for name, value in given.items() if value is not None}
    change.update({field.value: None for field in unset})
    try:
        return Limits.model_validate(change)
    except ValidationError as exc:
        raise _invalid(exc) from None


@users_app.command("limits")
def users_limits(
    name_or_id: NameOrId,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Requests at once.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Spend per budget period.")] = None,
    budget_period: Annotated[Period | None, typer.Option(help="Default: month.")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Allowed models, comma-separated patterns: 'local:*,openai:gpt-4o*'."),
    ] = None,
    unset: Annotated[
        list[LimitName] | None, typer.Option(help="Remove this limit (repeatable).")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Start from no limits (then apply those given).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Show an account's limits, or change the ones given.

    The others stay (--clear removes them all first, --unset one). 'in effect' adds the
    server default, which does not apply to administrators."""
    from pluggably.users.admin import effective_limits

    change = _change(rpm, tpm, max_concurrent, budget_usd, budget_period, models, unset or [])

    async def work(
        container: Container, session: AsyncSession
    ) -> tuple[UserSummary, Limits, Limits]:
        admin = container.user_admin
        user = await admin.find(session, name_or_id)
        if clear:
            await admin.replace_limits(session, user, change)
        elif change.model_fields_set:
            await admin.merge_limits(session, user, change)
        effective = effective_limits(user, container.settings.limits)
        return UserSummary.of(user), admin.limits(user), effective

    user, limits, effective = with_services(settings_from(), work)
    if as_json:
        typer.echo(limits.model_dump_json(indent=2))
    else:
        _limits_lines(user, limits, effective)
