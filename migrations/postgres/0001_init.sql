-- Cairn's metadata on PostgreSQL: the same tables as migrations/sqlite, so both stores behave alike.
-- Text that is compared or ordered uses COLLATE "C", i.e. UTF-8 byte order, as S3 lists keys and as
-- SQLite's BINARY collation compares them. Sizes, offsets and part numbers are BIGINT like
-- SQLite's 64-bit INTEGER. Times are milliseconds since the Unix epoch.

CREATE TABLE settings (
    name  TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE access_keys (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    secret     TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE buckets (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    created_ms BIGINT NOT NULL
);

-- The visible version of each key. `id` owns the object's chunks (chunks.owner).
CREATE TABLE objects (
    bucket             TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key                TEXT COLLATE "C" NOT NULL,
    id                 TEXT COLLATE "C" NOT NULL UNIQUE,
    size               BIGINT NOT NULL,
    etag               TEXT NOT NULL,
    last_modified_ms   BIGINT NOT NULL,
    headers            TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_value     TEXT,
    checksum_type      TEXT,
    parts_count        BIGINT,
    PRIMARY KEY (bucket, key)
);

-- The parts of a completed multipart object, for GET ?partNumber=N.
CREATE TABLE object_parts (
    object_id   TEXT COLLATE "C" NOT NULL,
    number      BIGINT NOT NULL,
    byte_offset BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (object_id, number)
);

CREATE TABLE uploads (
    id                 TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    bucket             TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key                TEXT COLLATE "C" NOT NULL,
    initiated_ms       BIGINT NOT NULL,
    headers            TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type      TEXT
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, id);

-- Each stored part owns its chunks through `owner`, until completion hands them to the object.
CREATE TABLE upload_parts (
    upload_id          TEXT COLLATE "C" NOT NULL,
    number             BIGINT NOT NULL,
    owner              TEXT COLLATE "C" NOT NULL UNIQUE,
    size               BIGINT NOT NULL,
    etag               TEXT NOT NULL,
    last_modified_ms   BIGINT NOT NULL,
    checksum_algorithm TEXT,
    checksum_value     TEXT,
    PRIMARY KEY (upload_id, number)
);

-- Chunks by owner (an object id or an upload part's owner id) and byte offset within it; the
-- primary key is the index the range lookups of reads walk.
CREATE TABLE chunks (
    owner       TEXT COLLATE "C" NOT NULL,
    byte_offset BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    chunk_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    PRIMARY KEY (owner, byte_offset)
);

-- Chunks no longer referenced, removed from storage once `due_ms` has passed (a grace period so
-- that reads already streaming the old version can finish).
CREATE TABLE gc_queue (
    chunk_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    due_ms   BIGINT NOT NULL
);
CREATE INDEX gc_queue_by_due ON gc_queue (due_ms);
