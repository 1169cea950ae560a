//! The test harness: a private world per test — its own PostgreSQL
//! database and NATS namespace — with the real gateway and detector running
//! in-process, or the real `awfdrs` binary as a child process for fault
//! tests. Tests run in parallel without seeing each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dead_letters;
mod events;
mod http;
mod ledger;
pub mod private;
mod process;
mod rules;
mod served;
mod sql;
mod system;
mod up;
mod wait;
mod world;

pub use dead_letters::{
    DeadLetter, dead_letter_of, dead_letter_row, dead_letters, has_dead_letter_table,
};
pub use events::{body_hash, failure, success};
pub use http::{RawAnswer, closed_within, read_answer};
pub use ledger::{HttpRecord, Ledger, NatsRecord, reconcile, reconcile_within};
pub use process::{awfdrs_bin, cli, free_port};
pub use rules::rules_edited;
pub use served::Served;
pub use sql::count;
pub use system::{System, run_detector};
pub use up::Up;
pub use wait::eventually;
pub use world::{World, cleanup, database_url, nats_url, new_secrets_key};
