//! The first run, as a newcomer makes it: what `scripts/run` runs after its
//! build (`awfdrs up`, wait for ready, `awfdrs demo`), and the README's
//! commands: the "Use it" block is run as written, and every `awfdrs`
//! command the README's shell blocks show must be one a test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use awfdrs_tests::{Up, World, awfdrs_bin, cleanup, eventually, free_port};
use serde_json::Value;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const README: &str = include_str!("../../README.md");
/// This file, to check that the tests named below exist.
const THIS: &str = include_str!("first_run.rs");

/// README commands outside the "Use it" block (which
/// `readme_use_it_works_as_written` runs line by line) and the test here
/// that runs each: the subcommand words, then the test.
const RUN_ELSEWHERE: &[(&[&str], &str)] = &[
    (
        &["up"],
        "demo_passes_against_awfdrs_up_with_the_shipped_rules",
    ),
    (
        &["demo"],
        "demo_passes_against_awfdrs_up_with_the_shipped_rules",
    ),
];

async fn awfdrs(world: &World, up_addr: &str, args: &[&str]) -> Output {
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn report(out: &Output, up: &Up) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}\n--- awfdrs up\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        up.output()
    )
}

async fn finish(world: World, up: Up) {
    up.stop().await;
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn demo_passes_against_awfdrs_up_with_the_shipped_rules() {
    let world = World::new().await;
    let up = Up::start(&world, &[]).await;
    let out = awfdrs(&world, &up.addr, &["demo", "--url", &up.base]).await;
    assert!(
        out.status.success(),
        "the demo failed:\n{}",
        report(&out, &up)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 incidents with"), "{stdout}");
    assert!(stdout.contains("dead-lettered on"), "{stdout}");
    finish(world, up).await;
}

/// A copy of the shipped rules in which `code` needs `count` failures.
fn rules_with_open_after(code: &str, count: u32) -> PathBuf {
    let shipped = Path::new(REPO).join("config/rules");
    let dir = std::env::temp_dir().join(format!("awfdrs-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "error_codes.yaml",
        "retry_policies.yaml",
        "vendor_config.yaml",
    ] {
        std::fs::copy(shipped.join(f), dir.join(f)).unwrap();
    }
    let codes = std::fs::read_to_string(dir.join("error_codes.yaml")).unwrap();
    let head = format!("  {code}:");
    let mut out = Vec::new();
    let mut inside = false;
    for line in codes.lines() {
        if line == head {
            inside = true;
            out.push(line.to_owned());
            out.push(format!("    open_after: {{ count: {count}, within: 10m }}"));
            continue;
        }
        if inside && !line.starts_with("    ") {
            inside = false;
        }
        if !(inside && line.trim_start().starts_with("open_after:")) {
            out.push(line.to_owned());
        }
    }
    assert!(
        out.iter().any(|l| l == &head),
        "no {code} in the shipped rules"
    );
    std::fs::write(dir.join("error_codes.yaml"), out.join("\n") + "\n").unwrap();
    dir
}

#[tokio::test]
async fn demo_fails_when_the_system_does_not_do_what_the_rules_say() {
    // The running system holds vendor_5xx back far longer than the rules
    // the demo reads: the payout incident never opens, and the demo's
    // check must say so.
    let world = World::new().await;
    let stricter = rules_with_open_after("vendor_5xx", 50);
    let up = Up::start(
        &world,
        &[("AWFDRS__RULES__DIR", stricter.to_str().unwrap())],
    )
    .await;
    let out = awfdrs(
        &world,
        &up.addr,
        &["demo", "--url", &up.base, "--timeout", "5"],
    )
    .await;
    assert!(
        !out.status.success(),
        "the demo passed:\n{}",
        report(&out, &up)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("expected incidents") && stderr.contains("payouts/vendor_5xx: 3 events"),
        "{}",
        report(&out, &up)
    );
    finish(world, up).await;
    let _ = std::fs::remove_dir_all(stricter);

    // Nothing listening: it fails at once, saying what to start.
    let world = World::new().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    let out = awfdrs(&world, &addr, &["demo", "--url", &url]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is `awfdrs up` running?"),
        "{}",
        text(&out.stderr)
    );
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

/// The README's fenced `sh` blocks, each with the `## ` section it is in.
fn sh_blocks(md: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match &mut current {
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push((section.clone(), std::mem::take(block)));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            None => {
                if let Some(h) = line.strip_prefix("## ") {
                    section = h.trim().to_owned();
                }
            }
        }
    }
    blocks
}

/// The subcommand words of every `awfdrs` invocation on a shell line
/// (the program named `awfdrs` or `…/awfdrs`), comments left out.
fn awfdrs_commands(line: &str) -> Vec<Vec<String>> {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    };
    let spaced = code
        .replace("$(", " ")
        .replace(['|', ';', '(', ')', '&', '`'], " ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if *w == "awfdrs" || w.ends_with("/awfdrs") {
            let sub: Vec<String> = words[i + 1..]
                .iter()
                .take(2)
                .take_while(|w| {
                    !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
                .map(|w| (*w).to_owned())
                .collect();
            out.push(sub);
        }
    }
    out
}

fn use_it_block() -> String {
    sh_blocks(README)
        .into_iter()
        .find(|(section, _)| section == "Use it")
        .map(|(_, b)| b)
        .expect("the README has a \"Use it\" section with a sh block")
}

#[test]
fn every_awfdrs_command_in_the_readme_is_run_by_a_test() {
    let use_it = use_it_block();
    let in_use_it: Vec<Vec<String>> = use_it.lines().flat_map(awfdrs_commands).collect();
    for want in [
        &["tenants", "create"][..],
        &["events", "send"],
        &["events", "publish"],
        &["incidents", "list"],
        &["rules", "check"],
    ] {
        assert!(
            in_use_it.iter().any(|c| c == want),
            "the README's \"Use it\" no longer shows `awfdrs {}`: {in_use_it:?}",
            want.join(" ")
        );
    }
    for (name, test) in RUN_ELSEWHERE {
        assert!(
            THIS.contains(&format!("async fn {test}()")),
            "no test {test} (named for `awfdrs {}`)",
            name.join(" ")
        );
    }
    let mut unexercised = Vec::new();
    for (section, block) in sh_blocks(README) {
        if section == "Use it" {
            continue; // run as written by readme_use_it_works_as_written
        }
        for line in block.lines() {
            for cmd in awfdrs_commands(line) {
                let covered = RUN_ELSEWHERE.iter().any(|(words, _)| {
                    cmd.len() >= words.len() && cmd.iter().zip(words.iter()).all(|(a, b)| a == b)
                });
                if !covered {
                    unexercised.push(format!("{section}: {line}"));
                }
            }
        }
    }
    assert!(
        unexercised.is_empty(),
        "README commands no test runs (run them in a test and list them in RUN_ELSEWHERE): {unexercised:#?}"
    );
}

#[test]
fn the_command_parser_finds_awfdrs_wherever_it_is_called() {
    assert_eq!(
        awfdrs_commands(r#"KEY=$(target/debug/awfdrs tenants create acme)  # the key"#),
        vec![vec!["tenants".to_owned(), "create".to_owned()]]
    );
    assert_eq!(
        awfdrs_commands(r#"echo "$E" | awfdrs events send --key "$KEY""#),
        vec![vec!["events".to_owned(), "send".to_owned()]]
    );
    assert_eq!(
        awfdrs_commands("awfdrs rules check config/rules"),
        vec![vec!["rules".to_owned(), "check".to_owned()]]
    );
    assert!(awfdrs_commands("# awfdrs demo, in a comment").is_empty());
    assert!(awfdrs_commands("scripts/run").is_empty());
}

#[tokio::test]
async fn readme_use_it_works_as_written() {
    let world = World::new().await;
    let up = Up::start(&world, &[]).await;
    // `${CARGO_TARGET_DIR:-$PWD/target}/debug/awfdrs` must be the binary
    // under test.
    let target = std::env::temp_dir().join(format!("awfdrs-readme-{}", world.namespace));
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::os::unix::fs::symlink(awfdrs_bin(), target.join("debug/awfdrs")).unwrap();

    let script = format!(
        "set -euo pipefail\n{}\nprintf 'README-KEY=%s\\nREADME-DATABASE_URL=%s\\n' \"$KEY\" \"$DATABASE_URL\"\n",
        use_it_block()
    );
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(REPO)
        .env_clear()
        .envs(world.env(&[]))
        .env("AWFDRS_HTTP_ADDR", &up.addr)
        .env("CARGO_TARGET_DIR", &target)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run bash");
    let _ = std::fs::remove_dir_all(&target);
    assert!(out.status.success(), "{}", report(&out, &up));
    let stdout = text(&out.stdout);
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .to_owned()
    };
    let key = value("README-KEY=");
    assert!(key.starts_with("awf_"), "{key:?}");
    assert_eq!(
        value("README-DATABASE_URL="),
        world.database_url,
        "services.sh --print-env settled on another database"
    );
    assert!(stdout.contains("202 Accepted"), "{stdout}");
    let subject = format!("{}.events.acme.checkout", world.namespace);
    assert!(
        stdout.contains(&format!("published to {subject}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("config/rules:") && stdout.contains(": ok"),
        "{stdout}"
    );

    // GET /api/v1/incidents: the HTTP event and the NATS one, one incident.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/incidents", up.base);
    let incident = eventually(Duration::from_secs(20), "the README's incident", || async {
        let r = http.get(&url).bearer_auth(&key).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        let items = v["items"].as_array()?.clone();
        (items.len() == 1 && items[0]["event_count"] == 2).then(|| items[0].clone())
    })
    .await;
    assert_eq!(incident["workflow_id"], "checkout");
    assert_eq!(incident["error_code"], "payment_timeout");

    let out = awfdrs(&world, &up.addr, &["incidents", "list", "--tenant", "acme"]).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    let listed = text(&out.stdout);
    let row = listed
        .lines()
        .find(|l| l.contains("payment_timeout"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        row.contains("checkout") && row.split_whitespace().any(|w| w == "2"),
        "{row}"
    );
    finish(world, up).await;
}
