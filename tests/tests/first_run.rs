//! The first run, as a newcomer makes it: what `scripts/run` runs after its
//! build (`awfdrs up`, wait for ready, `awfdrs demo`), and the README's
//! commands: the "Use it" block is run as written, and every `awfdrs`
//! command the README shows (its shell blocks and its command table) must
//! be one a test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use awfdrs_tests::{Served, World, awfdrs_bin, cleanup, eventually, free_port};
use serde_json::Value;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const README: &str = include_str!("../../README.md");

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

fn report(out: &Output, up: &Served) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}\n--- awfdrs up\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        up.output()
    )
}

async fn finish(world: World, up: Served) {
    up.stop().await;
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn demo_passes_against_awfdrs_up_with_the_shipped_rules() {
    let world = World::new().await;
    let up = Served::start(&world, &[]).await;
    let out = awfdrs(&world, &up.addr, &["demo", "--url", &up.base]).await;
    assert!(
        out.status.success(),
        "the demo failed:\n{}",
        report(&out, &up)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 incidents with"), "{stdout}");
    assert!(stdout.contains("dead-lettered on"), "{stdout}");
    // Each incident explained: why grouped, the root cause, what to do.
    for heading in ["Why grouped", "Root cause", "Recommendation"] {
        assert_eq!(stdout.matches(heading).count(), 3, "{heading}:\n{stdout}");
    }
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
    let up = Served::start(
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
        &["incidents", "explain"],
        &["rules", "check"],
    ] {
        assert!(
            in_use_it.iter().any(|c| c == want),
            "the README's \"Use it\" no longer shows `awfdrs {}`: {in_use_it:?}",
            want.join(" ")
        );
    }
    let sources = test_sources();
    let mut unexercised = Vec::new();
    for (section, block) in sh_blocks(README) {
        if section == "Use it" {
            continue; // run as written by readme_use_it_works_as_written
        }
        for line in block.lines() {
            for cmd in awfdrs_commands(line) {
                if !run_by_a_test(&cmd, &sources) {
                    unexercised.push(format!("{section}: {line}"));
                }
            }
        }
    }
    assert!(
        unexercised.is_empty(),
        "README commands no test runs: {unexercised:#?}"
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
    let up = Served::start(&world, &[]).await;
    // `${CARGO_TARGET_DIR:-$PWD/target}/debug/awfdrs` must be the binary
    // under test.
    let target = std::env::temp_dir().join(format!("awfdrs-readme-{}", world.namespace));
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::os::unix::fs::symlink(awfdrs_bin(), target.join("debug/awfdrs")).unwrap();

    let script = format!(
        "set -euo pipefail\n{}\nprintf 'README-KEY=%s\\nREADME-DATABASE_URL=%s\\n' \"$KEY\" \"$DATABASE_URL\"\n",
        use_it_block()
    );
    // The URL a user has: without the harness's driver-only parameters,
    // which psql (in scripts/services.sh) refuses.
    let database_url = world.database_url.split('?').next().unwrap().to_owned();
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(REPO)
        .env_clear()
        .envs(world.env(&[]))
        .env("DATABASE_URL", &database_url)
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
    // scripts/services.sh ran (and said what it found) rather than
    // failing into an empty eval.
    assert!(
        text(&out.stderr).contains("services: using nats-server"),
        "{}",
        report(&out, &up)
    );
    let key = value("README-KEY=");
    assert!(key.starts_with("awf_"), "{key:?}");
    assert_eq!(
        value("README-DATABASE_URL="),
        database_url,
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
    // The incident explained, as `awfdrs incidents explain` prints it.
    assert!(
        stdout.contains("Why grouped") && stdout.contains("Recommendation"),
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

/// The commands of the README's command table (its first column): the
/// subcommand words of each, one entry per alternative (`list\|reset`).
fn table_commands(md: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in md.lines().filter(|l| l.starts_with("| `awfdrs ")) {
        // The first cell ends at the first `|` that is not escaped.
        let body = &line[1..];
        let end = body
            .char_indices()
            .find(|&(i, c)| c == '|' && !body[..i].ends_with('\\'))
            .map_or(body.len(), |(i, _)| i);
        let mut group = String::new();
        for (n, span) in body[..end].split('`').enumerate() {
            if n % 2 == 0 || span.trim().is_empty() {
                continue; // outside a code span
            }
            let rest = match span.strip_prefix("awfdrs ") {
                Some(rest) => {
                    let mut words = rest.splitn(2, ' ');
                    group = words.next().unwrap().to_owned();
                    words.next().unwrap_or("").to_owned()
                }
                None => span.to_owned(), // `list`: another command of the same group
            };
            let is_word = |w: &str| {
                w.starts_with(|c: char| c.is_ascii_lowercase())
                    && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            };
            let mut subs = Vec::new();
            for alternative in rest.split("\\|") {
                if let Some(w) = alternative.split_whitespace().next().filter(|w| is_word(w)) {
                    subs.push(w.to_owned());
                }
            }
            if subs.is_empty() {
                out.push(vec![group.clone()]);
            }
            for s in subs {
                out.push(vec![group.clone(), s]);
            }
        }
    }
    out
}

/// Whether a test passes these subcommand words to the binary:
/// `&["a", "b", ...]`, `.args(["a", "b"])` or `.arg("a")`, compared without
/// whitespace so that formatting does not matter.
fn run_by_a_test(words: &[String], sources: &str) -> bool {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    let seq = quoted.join(",");
    sources.contains(&format!("[{seq}"))
        || (words.len() == 1 && sources.contains(&format!("arg({seq})")))
}

/// The test sources (this crate's tests and harness), whitespace removed.
fn test_sources() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    for entry in std::fs::read_dir(dir.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    all.split_whitespace().collect()
}

#[test]
fn the_readme_table_parser_reads_every_alternative() {
    let md = "| `awfdrs up [--http ADDR]` | x |\n\
              | `awfdrs worker gateway\\|detector` | x |\n\
              | `awfdrs tenants create <slug>` / `list` | x |\n\
              | `awfdrs breakers list\\|reset <vendor>\\|open <vendor> --reason R` | x |\n\
              | `awfdrs events send --key K\\|--tenant T [FILE]` | x |\n";
    let got: Vec<String> = table_commands(md).iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        got,
        [
            "up",
            "worker gateway",
            "worker detector",
            "tenants create",
            "tenants list",
            "breakers list",
            "breakers reset",
            "breakers open",
            "events send"
        ]
    );
}

#[test]
fn every_command_in_the_readme_table_is_run_by_a_test() {
    let commands = table_commands(README);
    assert!(
        commands.len() >= 10,
        "the table was not parsed: {commands:?}"
    );
    let sources = test_sources();
    let missing: Vec<String> = commands
        .iter()
        .filter(|words| !run_by_a_test(words, &sources))
        .map(|w| format!("awfdrs {}", w.join(" ")))
        .collect();
    assert!(
        missing.is_empty(),
        "README commands that no test runs: {missing:?}"
    );
}

#[tokio::test]
async fn the_other_readme_commands_work() {
    let world = World::new().await;
    let up = Served::start(&world, &[]).await;
    let run = |args: Vec<String>| {
        let world = &world;
        let addr = up.addr.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            awfdrs(world, &addr, &args).await
        }
    };
    let owned = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let out = run(owned(&["migrate"])).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    assert!(text(&out.stderr).contains("migrations applied"));

    let out = run(owned(&["tenants", "create", "acme"])).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    let key = text(&out.stdout).trim().to_owned();
    let out = run(owned(&["tenants", "list"])).await;
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("acme\t")),
        "{}",
        report(&out, &up)
    );

    // Signed with the webhook secret instead of a key; then a batch.
    let dir = std::env::temp_dir().join(format!("awfdrs-events-{}", world.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let one = dir.join("one.json");
    std::fs::write(
        &one,
        awfdrs_tests::failure("k-1", "checkout", "payment_timeout").to_string(),
    )
    .unwrap();
    let one = one.to_str().unwrap().to_owned();
    let out = run(owned(&["events", "send", "--tenant", "acme", &one])).await;
    assert!(
        !out.status.success(),
        "no webhook secret yet: {}",
        report(&out, &up)
    );
    let out = run(owned(&["tenants", "webhook-secret", "acme"])).await;
    assert!(
        text(&out.stdout).starts_with("whsec_"),
        "{}",
        report(&out, &up)
    );
    let out = run(owned(&["events", "send", "--tenant", "acme", &one])).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    assert!(
        text(&out.stdout).starts_with("202 Accepted"),
        "{}",
        report(&out, &up)
    );
    let batch = dir.join("batch.json");
    let items = serde_json::json!([
        awfdrs_tests::failure("k-2", "checkout", "payment_timeout"),
        {"idempotency_key": "k-3"}
    ]);
    std::fs::write(&batch, items.to_string()).unwrap();
    let batch = batch.to_str().unwrap().to_owned();
    let out = run(owned(&["events", "send", "--key", &key, &batch])).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    let stdout = text(&out.stdout);
    let body: Value = serde_json::from_str(stdout.lines().nth(1).unwrap()).unwrap();
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 422], "{stdout}");
    let out = run(owned(&["events", "send", "--key", "awf_wrong", &one])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).starts_with("401"),
        "{}",
        report(&out, &up)
    );
    // An array is published one message per event.
    let many = dir.join("many.json");
    let items = serde_json::json!([
        awfdrs_tests::failure("k-4", "checkout", "payment_timeout"),
        awfdrs_tests::failure("k-5", "checkout", "payment_timeout")
    ]);
    std::fs::write(&many, items.to_string()).unwrap();
    let many = many.to_str().unwrap().to_owned();
    let out = run(owned(&["events", "publish", "--tenant", "acme", &many])).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    let published = text(&out.stdout);
    assert_eq!(
        published
            .lines()
            .filter(|l| l.starts_with("published to"))
            .count(),
        2,
        "{published}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // An admin key sees every tenant's incidents.
    let out = run(owned(&["admin", "create-key"])).await;
    assert!(out.status.success(), "{}", report(&out, &up));
    let admin = text(&out.stdout).trim().to_owned();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/incidents", up.base);
    let incidents = eventually(
        Duration::from_secs(20),
        "the incident, seen by an admin",
        || async {
            let v: Value = http
                .get(&url)
                .bearer_auth(&admin)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let items = v["items"].as_array()?.clone();
            (items.len() == 1 && items[0]["event_count"] == 4).then_some(items)
        },
    )
    .await;
    assert_eq!(incidents[0]["error_code"], "payment_timeout");

    // One worker on its own.
    let gateway = Served::start_args(&world, &[], &["worker", "gateway"]).await;
    gateway.stop().await;

    let out = run(owned(&[
        "bench",
        "--events",
        "200",
        "--warmup",
        "0",
        "--modes",
        "nats,http",
    ]))
    .await;
    assert!(out.status.success(), "{}", report(&out, &up));
    // The analysis figures, both modes, over a small history.
    let out = run(owned(&[
        "bench",
        "--modes",
        "analysis,analysis-max",
        "--past-incidents",
        "200",
        "--analysis-rate",
        "20",
        "--analysis-seconds",
        "1",
    ]))
    .await;
    assert!(out.status.success(), "{}", report(&out, &up));
    let figures = text(&out.stdout);
    for want in [
        "analysis paced 20/s over 200 past incidents",
        "analysis max over 200 past incidents",
    ] {
        let block = figures
            .split("\n\n")
            .find(|b| b.starts_with(want))
            .unwrap_or_else(|| panic!("no {want:?} figures: {figures}"));
        assert!(
            block.contains("past       200 resolved incidents"),
            "{block}"
        );
        assert!(block.contains("analysed   20 incidents"), "{block}");
        assert!(block.contains("opened -> decided  ms p50"), "{block}");
    }
    finish(world, up).await;
}
