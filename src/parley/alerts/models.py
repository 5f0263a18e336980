"""The alerts' state: one row per alert, firing or not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, UTCDateTime


class Alert(Base):
    """One alert's state, so a change is noticed (and notified) once, by one watch.

    An alert is the deployment's, not a store's: it is about the job table every store
    shares. A store it concerns is named in its summary.

    - ``firing_since``: when it began to fire; None while it does not.
    - ``summary``: what it said when it last fired, in words an engineer acts on.
    - ``resolved_at``: when it last stopped firing.
    """

    __tablename__ = "alerts"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    firing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
