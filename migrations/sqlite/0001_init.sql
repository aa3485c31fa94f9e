-- Cairn's metadata: the map from buckets and keys to objects, parts and chunks.
-- Keys are TEXT compared with SQLite's BINARY collation, i.e. UTF-8 byte order, as S3 lists them.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE access_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    secret     TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE buckets (
    name       TEXT PRIMARY KEY NOT NULL,
    created_ms INTEGER NOT NULL
);

-- The visible version of each key. `id` owns the object's chunks (chunks.owner).
CREATE TABLE objects (
    bucket             TEXT NOT NULL REFERENCES buckets (name),
    key                TEXT NOT NULL,
    id                 TEXT NOT NULL UNIQUE,
    size               INTEGER NOT NULL,
    etag               TEXT NOT NULL,
    last_modified_ms   INTEGER NOT NULL,
    headers            TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_value     TEXT,
    checksum_type      TEXT,
    parts_count        INTEGER,
    PRIMARY KEY (bucket, key)
);

-- The parts of a completed multipart object, for GET ?partNumber=N.
CREATE TABLE object_parts (
    object_id TEXT NOT NULL,
    number    INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (object_id, number)
);

CREATE TABLE uploads (
    id                 TEXT PRIMARY KEY NOT NULL,
    bucket             TEXT NOT NULL REFERENCES buckets (name),
    key                TEXT NOT NULL,
    initiated_ms       INTEGER NOT NULL,
    headers            TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type      TEXT
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, id);

-- Each stored part owns its chunks through `owner`, until completion hands them to the object.
CREATE TABLE upload_parts (
    upload_id        TEXT NOT NULL,
    number           INTEGER NOT NULL,
    owner            TEXT NOT NULL UNIQUE,
    size             INTEGER NOT NULL,
    etag             TEXT NOT NULL,
    last_modified_ms   INTEGER NOT NULL,
    checksum_algorithm TEXT,
    checksum_value     TEXT,
    PRIMARY KEY (upload_id, number)
);

-- Chunks by owner (an object id or an upload part's owner id) and byte offset within it.
CREATE TABLE chunks (
    owner    TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    chunk_id TEXT NOT NULL UNIQUE,
    PRIMARY KEY (owner, byte_offset)
);

-- Chunks no longer referenced, removed from storage once `due_ms` has passed (a grace period so
-- that reads already streaming the old version can finish).
CREATE TABLE gc_queue (
    chunk_id TEXT PRIMARY KEY NOT NULL,
    due_ms   INTEGER NOT NULL
);
CREATE INDEX gc_queue_by_due ON gc_queue (due_ms);
