-- A queued chunk keeps its place in the chunk map of the object or part it was taken from, and
-- its digest, so that a read which began before the object was deleted or replaced can go on
-- paging through that map, verified as before, until the grace period ends (NULL for rows queued
-- before these columns existed, and for chunks that never belonged to anything).
ALTER TABLE gc_queue ADD COLUMN owner TEXT COLLATE "C";
ALTER TABLE gc_queue ADD COLUMN byte_offset BIGINT;
ALTER TABLE gc_queue ADD COLUMN size BIGINT;
ALTER TABLE gc_queue ADD COLUMN digest BYTEA;
CREATE INDEX gc_queue_by_owner ON gc_queue (owner, byte_offset);
