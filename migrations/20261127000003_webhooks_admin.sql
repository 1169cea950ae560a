-- Standard Webhooks signing secrets per tenant, and operator (admin) keys.

-- The secret must be readable to verify HMAC signatures, so it is stored as
-- is; protect the database (and its backups) accordingly.
ALTER TABLE tenants ADD COLUMN webhook_secret text;

-- Admin keys see every tenant. They belong to the operator, not to a
-- tenant, which is why this table alone carries no tenant_id.
CREATE TABLE admin_keys (
    id          uuid PRIMARY KEY,
    key_hash    bytea NOT NULL UNIQUE,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
