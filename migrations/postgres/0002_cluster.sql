-- The cluster: data nodes, which of them hold each chunk, and the coordinator's lease (the same
-- tables as migrations/sqlite/0002_cluster.sql; ids compared in byte order with COLLATE "C").

CREATE TABLE nodes (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    address      TEXT NOT NULL,
    zone         TEXT,
    -- 'up', 'down' or 'draining'
    state        TEXT NOT NULL,
    capacity     BIGINT,
    used         BIGINT NOT NULL DEFAULT 0,
    free         BIGINT,
    last_seen_ms BIGINT,
    added_ms     BIGINT NOT NULL
);

-- A replica row is written before the chunk is sent to the node (the intent, as a NameNode
-- records a block before it is written), and removed when that copy fails or is deleted.
CREATE TABLE replicas (
    chunk_id   TEXT COLLATE "C" NOT NULL,
    node_id    TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (chunk_id, node_id)
);
CREATE INDEX replicas_by_node ON replicas (node_id, chunk_id);

CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
