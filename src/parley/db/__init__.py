"""The database: engine and sessions, SQLite / PostgreSQL quirks in one place, migrations.

SQLite (WAL) is the embedded default; PostgreSQL is the scale-out engine. Code outside this
package never branches on the dialect except through the helpers here (``upsert``,
``is_postgres``).
"""

from parley.db.base import Base, UTCDateTime
from parley.db.engine import Database

__all__ = ["Base", "Database", "UTCDateTime"]
