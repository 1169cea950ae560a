//! The README's commands work as written: the "Use it" block run as a
//! shell script, and the other commands it shows.

use std::time::Duration;

use awfdrs_tests::{Served, World, awfdrs_bin, eventually};
use serde_json::Value;

use crate::coverage::use_it_block;
use crate::{REPO, awfdrs, finish, report, text};

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
