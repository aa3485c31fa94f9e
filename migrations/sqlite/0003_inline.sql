-- Small objects keep their bytes in their row instead of in chunks (NULL for chunked objects).
ALTER TABLE objects ADD COLUMN inline_data BLOB;
