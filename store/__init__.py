"""Storage: SQLAlchemy Core tables, the engine, and the queries each stage needs.

SQLite (WAL) is the embedded default; PostgreSQL is the production database.
Queries are written once for both; where they differ (row locking, upsert
syntax) the difference is kept inside this package.
"""
