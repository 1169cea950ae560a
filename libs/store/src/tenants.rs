//! Tenants, their API keys (stored as hashes) and their webhook signing
//! secrets (sealed at rest, [`crate::Slot::tenant`]).

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Slot, Store, StoreError};

/// A tenant: the owner of events and incidents.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
}

/// A tenant's row with its webhook signing secret.
#[derive(sqlx::FromRow)]
struct SecretRow {
    id: Uuid,
    slug: String,
    webhook_secret: Option<String>,
}

fn key_hash(api_key: &str) -> Vec<u8> {
    Sha256::digest(api_key.as_bytes()).to_vec()
}

impl Store {
    /// Creates a tenant whose API key is `api_key` (stored only as its hash).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the slug is taken.
    pub async fn create_tenant(&self, slug: &str, api_key: &str) -> Result<Tenant, StoreError> {
        let id = Uuid::now_v7();
        let res = sqlx::query(
            "INSERT INTO tenants (id, slug, api_key_hash) VALUES ($1, $2, $3)
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(id)
        .bind(slug)
        .bind(key_hash(api_key))
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "tenant {slug} already exists"
            )));
        }
        Ok(Tenant {
            id,
            slug: slug.to_owned(),
        })
    }

    /// The tenant an API key names, if any.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tenant_by_api_key(&self, api_key: &str) -> Result<Option<Tenant>, StoreError> {
        Ok(
            sqlx::query_as::<_, Tenant>("SELECT id, slug FROM tenants WHERE api_key_hash = $1")
                .bind(key_hash(api_key))
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The tenant with `slug`, if any.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        Ok(
            sqlx::query_as::<_, Tenant>("SELECT id, slug FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets (or rotates) the tenant's Standard Webhooks signing secret
    /// (sealed).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such tenant,
    /// [`StoreError::Sealed`] without a key.
    pub async fn set_webhook_secret(&self, slug: &str, secret: &str) -> Result<(), StoreError> {
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(StoreError::NotFound)?;
        let sealed = self.seal(&Slot::tenant(tenant.id), secret)?;
        let res = sqlx::query("UPDATE tenants SET webhook_secret = $2 WHERE id = $1")
            .bind(tenant.id)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The tenant with `slug` and its webhook signing secret (opened), if
    /// it has one.
    ///
    /// # Errors
    /// On database failure; [`StoreError::Sealed`] when the secret cannot
    /// be opened with the configured keys.
    pub async fn tenant_webhook_secret(
        &self,
        slug: &str,
    ) -> Result<Option<(Tenant, String)>, StoreError> {
        let row: Option<SecretRow> =
            sqlx::query_as("SELECT id, slug, webhook_secret FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&self.pool)
                .await?;
        let Some(SecretRow {
            id,
            slug,
            webhook_secret: Some(stored),
        }) = row
        else {
            return Ok(None);
        };
        let secret = self.open(&Slot::tenant(id), &stored)?;
        Ok(Some((Tenant { id, slug }, secret)))
    }

    /// Creates an admin key (stored only as its hash).
    ///
    /// # Errors
    /// On database failure.
    pub async fn create_admin_key(&self, label: &str, api_key: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_keys (id, key_hash, label) VALUES ($1, $2, $3)")
            .bind(Uuid::now_v7())
            .bind(key_hash(api_key))
            .bind(label)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether `api_key` is an admin key.
    ///
    /// # Errors
    /// On database failure.
    pub async fn is_admin_key(&self, api_key: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admin_keys WHERE key_hash = $1)")
                .bind(key_hash(api_key))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Every tenant, by slug.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        Ok(
            sqlx::query_as::<_, Tenant>("SELECT id, slug FROM tenants ORDER BY slug")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Replaces the tenant's API key with `api_key`: the old key stops
    /// matching at once (gateways trust a cached key for at most a second).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such tenant.
    pub async fn rotate_api_key(&self, slug: &str, api_key: &str) -> Result<(), StoreError> {
        let res = sqlx::query("UPDATE tenants SET api_key_hash = $2 WHERE slug = $1")
            .bind(slug)
            .bind(key_hash(api_key))
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Revokes the tenant's API key, leaving it none: the stored hash
    /// becomes that of a random secret nobody is shown, so no key matches
    /// until the next rotation.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such tenant.
    pub async fn revoke_api_key(&self, slug: &str) -> Result<(), StoreError> {
        let unknowable = format!("revoked:{}:{}", Uuid::new_v4(), Uuid::new_v4());
        self.rotate_api_key(slug, &unknowable).await
    }

    /// The vendors `tenant` has sent events for, by name.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tenant_vendors(&self, tenant: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT vendor FROM tenant_vendors WHERE tenant_id = $1 ORDER BY vendor",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }
}
