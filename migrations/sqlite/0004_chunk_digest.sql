-- The digest the gateway computed of each chunk's bytes as it wrote them (32 bytes: SHA-256 of the
-- chunk's length, block size and CRC32C table; see chunk::ChunkDigest), against which every read
-- and scrub judges a replica. NULL for chunks written before it was recorded.
ALTER TABLE chunks ADD COLUMN digest BLOB;
