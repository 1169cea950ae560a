//! Reloading swaps in valid rules and keeps the last good ones otherwise.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_rules::{RulesHandle, spawn_watcher};
use tokio_util::sync::CancellationToken;

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/rules")
}

/// A temp dir holding a copy of the shipped rules.
fn copy_of_shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "error_codes.yaml",
        "retry_policies.yaml",
        "vendor_config.yaml",
    ] {
        fs::copy(shipped_dir().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {file}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn reload_with_an_invalid_file_keeps_the_old_rules() {
    let dir = copy_of_shipped();
    let handle = RulesHandle::load(dir.path()).unwrap();
    let before = handle.current();
    edit(
        dir.path(),
        "error_codes.yaml",
        "retry_policy: payment_timeout",
        "retry_policy: fast",
    );
    let err = handle.reload().unwrap_err();
    assert!(
        err.to_string()
            .contains("codes.payment_timeout.retry_policy: unknown policy \"fast\""),
        "{err}"
    );
    assert!(
        Arc::ptr_eq(&before, &handle.current()),
        "the last good rules stay in force"
    );
}

#[test]
fn reload_with_a_valid_change_swaps_the_rules() {
    let dir = copy_of_shipped();
    let handle = RulesHandle::load(dir.path()).unwrap();
    edit(
        dir.path(),
        "vendor_config.yaml",
        "retries_per_second: 25",
        "retries_per_second: 30",
    );
    handle.reload().unwrap();
    assert!(
        (handle
            .current()
            .vendor("stripe")
            .rate_limit
            .retries_per_second
            - 30.0)
            .abs()
            < f64::EPSILON
    );
}

async fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test]
async fn the_watcher_reloads_on_file_change_and_ignores_invalid_edits() {
    let dir = copy_of_shipped();
    let handle = Arc::new(RulesHandle::load(dir.path()).unwrap());
    let cancel = CancellationToken::new();
    let task = spawn_watcher(Arc::clone(&handle), cancel.clone()).unwrap();

    let original = handle.current();
    edit(
        dir.path(),
        "vendor_config.yaml",
        "max_retries_per_run: 5",
        "max_retries_per_run: oops",
    );
    edit(
        dir.path(),
        "vendor_config.yaml",
        "max_retries_per_run: oops",
        "max_retries_per_run: 7",
    );
    let h = Arc::clone(&handle);
    assert!(
        wait_for(Duration::from_secs(10), || h
            .current()
            .hard_limits()
            .max_retries_per_run
            == 7)
        .await,
        "the change was not picked up"
    );
    assert!(!Arc::ptr_eq(&original, &handle.current()));

    let good = handle.current();
    edit(
        dir.path(),
        "vendor_config.yaml",
        "max_retries_per_run: 7",
        "max_retries_per_run: -7",
    );
    // Give the watcher time to see and reject it; the rules must not change.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(Arc::ptr_eq(&good, &handle.current()));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
