-- The cluster: data nodes, which of them hold each chunk, and the coordinator's lease.

CREATE TABLE nodes (
    id           TEXT PRIMARY KEY NOT NULL,
    address      TEXT NOT NULL,
    zone         TEXT,
    -- 'up', 'down' or 'draining'
    state        TEXT NOT NULL,
    capacity     INTEGER,
    used         INTEGER NOT NULL DEFAULT 0,
    free         INTEGER,
    last_seen_ms INTEGER,
    added_ms     INTEGER NOT NULL
);

-- A replica row is written before the chunk is sent to the node (the intent, as a NameNode
-- records a block before it is written), and removed when that copy fails or is deleted.
CREATE TABLE replicas (
    chunk_id   TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (chunk_id, node_id)
);
CREATE INDEX replicas_by_node ON replicas (node_id, chunk_id);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
