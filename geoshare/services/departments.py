"""Departments own layers; publishing refuses a department that is not registered."""

from __future__ import annotations

from sqlalchemy import Connection, text


def ensure_department(conn: Connection, code: str, name: str, contact: str | None = None) -> None:
    """Create or update a department (idempotent, so set-up scripts and tests can call it freely)."""
    conn.execute(
        text(
            """
            INSERT INTO gs.department (code, name, contact) VALUES (:code, :name, :contact)
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, contact = EXCLUDED.contact
            """
        ),
        {"code": code, "name": name, "contact": contact},
    )
