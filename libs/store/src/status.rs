//! Incident statuses in SQL: bound and read as the enum, stored as its
//! text, so no query spells a status in Rust.
//!
//! Predicates that a partial index is built on (`status <> 'RESOLVED'`,
//! `status = 'RESOLVED'`) stay literals in the SQL, built once from
//! [`IncidentStatus::as_str`] ([`RESOLVED`]): an `ON CONFLICT … WHERE` must
//! repeat its index's predicate literally, and a parameter there would keep
//! a prepared statement's generic plan off the index.

use awfdrs_domain::IncidentStatus;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef, Postgres};
use sqlx::{Decode, Encode, Type};

/// `RESOLVED`, for the SQL that must hold it literally.
pub(crate) const RESOLVED: &str = IncidentStatus::Resolved.as_str();

/// An [`IncidentStatus`] as a `text` column or parameter. Reading a text
/// that is no status is a decode error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusColumn(pub IncidentStatus);

impl From<StatusColumn> for IncidentStatus {
    fn from(column: StatusColumn) -> Self {
        column.0
    }
}

impl Type<Postgres> for StatusColumn {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl PgHasArrayType for StatusColumn {
    fn array_type_info() -> PgTypeInfo {
        <&str as PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &PgTypeInfo) -> bool {
        <&str as PgHasArrayType>::array_compatible(ty)
    }
}

impl Encode<'_, Postgres> for StatusColumn {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'_, Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for StatusColumn {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Postgres>>::decode(value)?;
        Ok(Self(text.parse::<IncidentStatus>()?))
    }
}
