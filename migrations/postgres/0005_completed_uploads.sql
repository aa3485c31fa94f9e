-- Multipart uploads completed recently, kept so that a CompleteMultipartUpload retried after it
-- succeeded (SDKs retry when the first answer is lost) gets the same success again, as on S3,
-- rather than NoSuchUpload. Rows are pruned once older than the upload expiry.
CREATE TABLE completed_uploads (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    bucket       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    -- The object the completion made; a retry succeeds only while it is still the key's object.
    object_id    TEXT COLLATE "C" NOT NULL,
    completed_ms BIGINT NOT NULL
);
CREATE INDEX completed_uploads_by_time ON completed_uploads (completed_ms);
