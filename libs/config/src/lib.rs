//! Configuration of every AWFDRS process: layered, typed and validated.
//!
//! Layers, later winning: built-in defaults (`config/awfdrs.yaml` compiled
//! in), the YAML file, `AWFDRS__SECTION__KEY` environment variables, the
//! well-known variables (`DATABASE_URL`, `NATS_URL`, `AWFDRS_NAMESPACE`,
//! `AWFDRS_HTTP_ADDR`, `LOG_FORMAT`), then command-line flags applied by the
//! caller. The environment is a parameter, so tests pass a map. Unknown keys
//! are errors, and every problem is reported at once with its key path.
//! This crate reads files; it opens no connections.

mod load;
mod model;
mod secrets;
mod validate;

pub use load::{ConfigError, ConfigErrors, Env};
pub use model::*;
pub use secrets::{Hidden, KEY_VARIABLES, SecretKeys, SecretsConfig};
