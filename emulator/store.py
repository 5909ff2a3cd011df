"""Where the service keeps its state: rows in SQLite, bytes (images, features, models) in a blob store.

Two flavours with one interface: on disk under `--data-dir` (survives a restart) or in memory (`--in-memory`, for
tests: nothing is left behind). One SQLite connection guarded by a lock serves every request thread; the service's
calls are short, so a single writer is simpler than a pool and never sees "database is locked".
Models and features are stored as JSON and `.npy` (allow_pickle=False): never pickles, so a data dir is safe to open.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, domain_id TEXT NOT NULL,
    classification_type TEXT, target_export_platforms TEXT NOT NULL DEFAULT '[]',
    created TEXT NOT NULL, last_modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT, type TEXT NOT NULL, created TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tags_name ON tags(project_id, name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, format TEXT NOT NULL,
    sha256 TEXT NOT NULL, metadata TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS images_sha ON images(project_id, sha256);
-- Images deleted from the workspace (DeleteImages without allIterations) that an iteration trained on: that iteration
-- keeps them (image performances, their URIs). Same columns as images; removed when no iteration has them any more.
CREATE TABLE IF NOT EXISTS retired_images (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, format TEXT NOT NULL,
    sha256 TEXT NOT NULL, metadata TEXT
);
CREATE TABLE IF NOT EXISTS image_tags (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag_id TEXT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    created TEXT NOT NULL, PRIMARY KEY (image_id, tag_id)
);
CREATE INDEX IF NOT EXISTS image_tags_tag ON image_tags(tag_id);
CREATE TABLE IF NOT EXISTS iterations (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL, last_modified TEXT NOT NULL,
    trained_at TEXT, domain_id TEXT, classification_type TEXT, training_type TEXT NOT NULL,
    reserved_budget_in_hours INTEGER NOT NULL DEFAULT 0, training_time_in_minutes INTEGER NOT NULL DEFAULT 0,
    publish_name TEXT NOT NULL DEFAULT '', publish_resource_id TEXT NOT NULL DEFAULT '',
    training_error_details TEXT, fingerprint TEXT NOT NULL, selected_tags TEXT
);
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    iteration_id TEXT NOT NULL, domain_id TEXT NOT NULL, created TEXT NOT NULL, application TEXT,
    predictions TEXT NOT NULL
);
"""


class Database:
    """A SQLite database shared by all threads behind one re-entrant lock."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        target = ":memory:" if path is None else str(path)
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            if path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run several statements atomically (and exclusively among this process's threads)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class BlobStore:
    """Bytes by key ("images/<id>", "models/<iteration id>.json" ...), in memory or in files."""

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self._root = None if root is None else Path(root)
        self._memory: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        assert self._root is not None
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self._root / key

    def put(self, key: str, data: bytes) -> None:
        if self._root is None:
            with self._lock:
                self._memory[key] = bytes(data)
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers see the whole file or none of it

    def get(self, key: str) -> bytes | None:
        if self._root is None:
            with self._lock:
                return self._memory.get(key)
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        if self._root is None:
            with self._lock:
                self._memory.pop(key, None)
            return
        self._path(key).unlink(missing_ok=True)

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, separators=(",", ":")).encode())

    def get_json(self, key: str) -> Any:
        data = self.get(key)
        return None if data is None else json.loads(data)

    def put_array(self, key: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        self.put(key, buf.getvalue())

    def get_array(self, key: str) -> np.ndarray | None:
        data = self.get(key)
        return None if data is None else np.load(io.BytesIO(data), allow_pickle=False)


class Storage:
    """The database and the blob store of one service instance."""

    def __init__(self, data_dir: str | os.PathLike[str] | None) -> None:
        if data_dir is None:
            self.db = Database(None)
            self.blobs = BlobStore(None)
        else:
            root = Path(data_dir)
            root.mkdir(parents=True, exist_ok=True)
            self.db = Database(root / "customvision.sqlite3")
            self.blobs = BlobStore(root / "blobs")

    def close(self) -> None:
        self.db.close()
