-- Accounts own buckets, objects, uploads and access keys; stored policies are named IAM identity
-- documents attached to accounts. A store made before accounts existed gets an `admin` account,
-- with a random 64-hex canonical id, which takes every existing key, bucket, object and upload:
-- its keys keep the right to everything they had.

CREATE TABLE accounts (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_ms   INTEGER NOT NULL
);

CREATE TABLE policies (
    name     TEXT PRIMARY KEY NOT NULL,
    document TEXT NOT NULL
);

CREATE TABLE account_policies (
    account TEXT NOT NULL,
    policy  TEXT NOT NULL,
    PRIMARY KEY (account, policy)
);
CREATE INDEX account_policies_by_policy ON account_policies (policy);

-- One row counting changes to anything an authorization decision reads (accounts, keys,
-- policies, attachments, buckets and their access fields): gateways poll it to drop their caches.
CREATE TABLE access_generation (
    id    INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO access_generation (id, value) VALUES (1, 1);

INSERT INTO accounts (id, name, display_name, created_ms)
VALUES (lower(hex(randomblob(32))), 'admin', 'admin',
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

-- The access fields are JSON (acl, public_access_block), the bucket policy as the client sent
-- it, and the object ownership setting; NULL is "not configured".
ALTER TABLE access_keys ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE access_keys ADD COLUMN policy TEXT;
ALTER TABLE buckets ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE buckets ADD COLUMN acl TEXT;
ALTER TABLE buckets ADD COLUMN policy TEXT;
ALTER TABLE buckets ADD COLUMN ownership TEXT;
ALTER TABLE buckets ADD COLUMN public_access_block TEXT;
ALTER TABLE objects ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN acl TEXT;
ALTER TABLE uploads ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE uploads ADD COLUMN acl TEXT;

UPDATE access_keys SET account = (SELECT id FROM accounts WHERE name = 'admin');
UPDATE buckets SET owner = (SELECT id FROM accounts WHERE name = 'admin');
UPDATE objects SET owner = (SELECT id FROM accounts WHERE name = 'admin');
UPDATE uploads SET owner = (SELECT id FROM accounts WHERE name = 'admin');

CREATE INDEX access_keys_by_account ON access_keys (account);
CREATE INDEX buckets_by_owner ON buckets (owner, name);
