"""Small statement helpers shared by the repository modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def insert_ignoring_conflicts_statement(session: AsyncSession, model: type[DeclarativeBase]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the session's backend (both SQLite and PostgreSQL have it).

    A conflicting insert leaves the transaction usable, unlike catching an IntegrityError, which on
    PostgreSQL aborts the whole transaction.
    """
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    return insert(model).on_conflict_do_nothing()


async def insert_ignoring_conflicts(
    session: AsyncSession, model: type[DeclarativeBase], values: dict[str, Any]
) -> Any | None:
    """Insert one row unless it conflicts with a unique constraint; returns its primary key or None."""
    table = model.__table__  # type: ignore[attr-defined]
    statement = insert_ignoring_conflicts_statement(session, model).values(values).returning(*table.primary_key.columns)
    row = (await session.execute(statement)).first()
    return None if row is None else (row[0] if len(row) == 1 else tuple(row))
