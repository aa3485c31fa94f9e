-- Multipart uploads completed recently, kept so that a CompleteMultipartUpload retried after it
-- succeeded (SDKs retry when the first answer is lost) gets the same success again, as on S3,
-- rather than NoSuchUpload. Rows are pruned once older than the upload expiry.
CREATE TABLE completed_uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    bucket       TEXT NOT NULL,
    key          TEXT NOT NULL,
    -- The object the completion made; a retry succeeds only while it is still the key's object.
    object_id    TEXT NOT NULL,
    completed_ms INTEGER NOT NULL
);
CREATE INDEX completed_uploads_by_time ON completed_uploads (completed_ms);
