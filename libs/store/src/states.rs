//! States in SQL: incident statuses and breaker states are bound and read
//! as their enums and stored as their names (`text`), so no query spells a
//! state in Rust.
//!
//! Predicates that a partial index is built on (`status <> 'RESOLVED'`,
//! `status = 'RESOLVED'`) stay literals in the SQL, built once from
//! [`IncidentStatus::as_str`] ([`RESOLVED`]): an `ON CONFLICT … WHERE` must
//! repeat its index's predicate literally, and a parameter there would keep
//! a prepared statement's generic plan off the index.

use std::fmt::Display;
use std::str::FromStr;

use awfdrs_domain::IncidentStatus;
use awfdrs_safety::breaker::BreakerState;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef, Postgres};
use sqlx::{Decode, Encode, Type};

/// `RESOLVED`, for the SQL that must hold it literally.
pub(crate) const RESOLVED: &str = IncidentStatus::Resolved.as_str();

/// A state stored by its name.
pub trait StateName: Copy + FromStr<Err: Display> {
    /// The name in the database.
    fn name(self) -> &'static str;
}

impl StateName for IncidentStatus {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl StateName for awfdrs_domain::ActionStatus {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl From<StateColumn<awfdrs_domain::ActionStatus>> for awfdrs_domain::ActionStatus {
    fn from(column: StateColumn<awfdrs_domain::ActionStatus>) -> Self {
        column.0
    }
}

impl StateName for BreakerState {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// A state as a `text` column or parameter. Reading a text that names no
/// state is a decode error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateColumn<T>(pub T);

impl From<StateColumn<IncidentStatus>> for IncidentStatus {
    fn from(column: StateColumn<IncidentStatus>) -> Self {
        column.0
    }
}

impl From<StateColumn<BreakerState>> for BreakerState {
    fn from(column: StateColumn<BreakerState>) -> Self {
        column.0
    }
}

impl<T: StateName> Type<Postgres> for StateColumn<T> {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl<T: StateName> PgHasArrayType for StateColumn<T> {
    fn array_type_info() -> PgTypeInfo {
        <&str as PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &PgTypeInfo) -> bool {
        <&str as PgHasArrayType>::array_compatible(ty)
    }
}

impl<T: StateName> Encode<'_, Postgres> for StateColumn<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'_, Postgres>>::encode(self.0.name(), buf)
    }
}

impl<'r, T: StateName> Decode<'r, Postgres> for StateColumn<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Postgres>>::decode(value)?;
        let state = text.parse::<T>().map_err(|e| e.to_string())?;
        Ok(Self(state))
    }
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    #[sqlx::test(migrations = false)]
    async fn a_state_is_written_by_its_name_and_read_back(pool: PgPool) {
        let name: String = sqlx::query_scalar("SELECT $1::text")
            .bind(StateColumn(BreakerState::HalfOpen))
            .fetch_one(&pool)
            .await
            .expect("bound");
        assert_eq!(name, "HALF_OPEN");
        let read: StateColumn<IncidentStatus> = sqlx::query_scalar("SELECT 'ANALYZING'::text")
            .fetch_one(&pool)
            .await
            .expect("read");
        assert_eq!(read.0, IncidentStatus::Analyzing);
    }

    #[sqlx::test(migrations = false)]
    async fn a_text_that_names_no_state_is_a_decode_error(pool: PgPool) {
        let read = sqlx::query_scalar::<_, StateColumn<IncidentStatus>>("SELECT 'OPEN'::text")
            .fetch_one(&pool)
            .await;
        assert!(
            matches!(read, Err(sqlx::Error::ColumnDecode { .. })),
            "{read:?}"
        );
    }
}
