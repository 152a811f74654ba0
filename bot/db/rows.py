"""Small statement helpers shared by the repository modules."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Insert, Result
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def insert_ignoring_conflicts_statement(session: AsyncSession, model: type[DeclarativeBase]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the session's backend (both SQLite and PostgreSQL have it).

    A conflicting insert leaves the transaction usable, unlike catching an IntegrityError, which on
    PostgreSQL aborts the whole transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()


async def insert_ignoring_conflicts(
    session: AsyncSession, model: type[DeclarativeBase], values: dict[str, Any]
) -> Any | None:
    """Insert one row unless it conflicts with a unique constraint; returns its primary key or None."""
    table = model.__table__
    statement = insert_ignoring_conflicts_statement(session, model).values(values).returning(*table.primary_key)
    row = (await session.execute(statement)).first()
    return None if row is None else (row[0] if len(row) == 1 else tuple(row))


def affected_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (`Session.execute` types every result as a plain Result)."""
    return cast("CursorResult[Any]", result).rowcount


async def execute_counting(session: AsyncSession, statement: Executable) -> int:
    """Run an UPDATE or DELETE; returns how many rows it matched."""
    return affected_rows(await session.execute(statement))
