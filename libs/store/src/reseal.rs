//! Sealing the secrets at rest again with the current key: what
//! `awfdrs secrets rotate` does after a new key is configured (the old one
//! kept as old), and what `awfdrs migrate` and `awfdrs up` do for secrets
//! still in plain text from before sealing existed.
//!
//! Column by column, in batches of rows taken in their name's order, each
//! batch in one transaction holding its rows (`FOR UPDATE`), so a
//! concurrent write of a secret waits for it. A row already sealed with the
//! current key is only checked; a row that cannot be opened is left as it
//! is and reported. Running it again changes nothing more.

use serde::Serialize;

use crate::sealed::{Column, Keyring, Slot};
use crate::{Store, StoreError};

/// What a rotation did to one column.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ColumnReport {
    /// `table.column`.
    pub column: String,
    /// Sealed again with the current key (from an old key).
    pub resealed: u64,
    /// Sealed for the first time (stored in plain text before).
    pub sealed_plain: u64,
    /// Already sealed with the current key (and opened to check it).
    pub current: u64,
    /// Rows whose secret cannot be opened, left unchanged.
    pub unreadable: Vec<Unreadable>,
}

/// A row whose secret cannot be opened, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// The row's name within its column (`<id>`, `<tenant>/<workflow>`).
    pub row: String,
    pub reason: String,
}

/// What a rotation did, column by column.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResealReport {
    /// The key everything readable is now sealed with.
    pub key_id: String,
    pub columns: Vec<ColumnReport>,
}

impl ResealReport {
    /// Rows that cannot be opened, over every column.
    #[must_use]
    pub fn unreadable(&self) -> usize {
        self.columns.iter().map(|c| c.unreadable.len()).sum()
    }

    /// Rows whose stored value changed, over every column.
    #[must_use]
    pub fn changed(&self) -> u64 {
        self.columns
            .iter()
            .map(|c| c.resealed + c.sealed_plain)
            .sum()
    }
}

/// A row as a rotation reads it.
#[derive(sqlx::FromRow)]
struct Row {
    /// Where the row is (its ctid), for the update.
    at: String,
    row: String,
    stored: String,
}

impl Store {
    /// Seals every secret at rest with the current key, `batch` rows per
    /// transaction; with `plain_only`, only the secrets still in plain text
    /// (the cheap pass run when migrating).
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Sealed`] without a key; rows
    /// that cannot be opened are in the report, not errors.
    pub async fn reseal_secrets(
        &self,
        batch: i64,
        plain_only: bool,
    ) -> Result<ResealReport, StoreError> {
        let keys = self.keys()?;
        let mut report = ResealReport {
            key_id: keys.current_id().to_owned(),
            columns: Vec::new(),
        };
        for column in &Column::ALL {
            report.columns.push(
                self.reseal_column(keys, column, batch.max(1), plain_only)
                    .await?,
            );
        }
        Ok(report)
    }

    /// [`Store::reseal_secrets`] of one column.
    async fn reseal_column(
        &self,
        keys: &Keyring,
        column: &Column,
        batch: i64,
        plain_only: bool,
    ) -> Result<ColumnReport, StoreError> {
        let Column {
            table,
            column: col,
            row_key,
        } = column;
        // Sealed values start `v<digits>:` (see `sealed::looks_sealed`).
        let which = if plain_only {
            format!("AND {col} !~ '^v[0-9]+:'")
        } else {
            String::new()
        };
        let select = format!(
            "SELECT ctid::text AS at, {row_key} AS row, {col} AS stored FROM {table}
             WHERE {col} IS NOT NULL AND ({row_key}) COLLATE \"C\" > $1 {which}
             ORDER BY ({row_key}) COLLATE \"C\" LIMIT $2 FOR UPDATE"
        );
        // The row is locked by this transaction, so its ctid holds.
        let update = format!("UPDATE {table} SET {col} = $2 WHERE ctid = $1::tid AND {col} = $3");
        let mut out = ColumnReport {
            column: column.name(),
            ..ColumnReport::default()
        };
        let mut after = String::new();
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
                .bind(&after)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else { break };
            after.clone_from(&last.row);
            for r in &rows {
                let slot = Slot::of(column, &r.row);
                let plain = match keys.open(&slot, &r.stored) {
                    Ok(plain) => plain,
                    Err(e) => {
                        out.unreadable.push(Unreadable {
                            row: r.row.clone(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                if keys.is_current(&r.stored) {
                    out.current += 1;
                    continue;
                }
                let sealed = keys.seal(&slot, &plain)?;
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(&r.at)
                    .bind(sealed)
                    .bind(&r.stored)
                    .execute(&mut *tx)
                    .await?;
                if crate::sealed::looks_sealed(&r.stored) {
                    out.resealed += 1;
                } else {
                    out.sealed_plain += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(out)
    }
}
