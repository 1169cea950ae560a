//! The first run, as a newcomer makes it: what `scripts/run` runs after its
//! build (`awfdrs up`, wait for ready, `awfdrs demo`), and the README's
//! commands: the "Use it" block is run as written, and every `awfdrs`
//! command the README shows (its shell blocks and its command table) must
//! be one a test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use awfdrs_tests::{Served, World, awfdrs_bin, cleanup};

mod bench;
mod cluster;
mod coverage;
mod demo;
mod readme;

pub(crate) const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
pub(crate) const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));

pub(crate) async fn awfdrs(world: &World, up_addr: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(awfdrs_bin())
        .args(args)
        .current_dir(REPO)
        .env_clear()
        .envs(world.env(&[]))
        .env("AWFDRS_HTTP_ADDR", up_addr)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run awfdrs")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn report(out: &Output, up: &Served) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}\n--- awfdrs up\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        up.output()
    )
}

pub(crate) async fn finish(world: World, up: Served) {
    up.stop().await;
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}
