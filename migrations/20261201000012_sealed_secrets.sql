-- Signing secrets are sealed at rest from here on: each value is
-- `v1:<key-id>:<base64(nonce || ciphertext)>` (XChaCha20-Poly1305, the
-- row's slot as associated data; libs/store/src/sealed.rs), with a key from
-- outside the database. A value in plain text was written before this
-- migration; `awfdrs migrate`, `awfdrs up` and `awfdrs secrets rotate` seal
-- it. (The note in 20261127000003 that the tenant's secret is stored as it
-- is no longer holds.)
COMMENT ON COLUMN tenants.webhook_secret IS
    'sealed: v1:<key-id>:<base64>, slot tenants.webhook_secret:<id>';
COMMENT ON COLUMN workflow_callbacks.secret IS
    'sealed: v1:<key-id>:<base64>, slot workflow_callbacks.secret:<tenant_id>/<workflow_id>';
COMMENT ON COLUMN channels.secret IS
    'sealed: v1:<key-id>:<base64>, slot channels.secret:<id>';
