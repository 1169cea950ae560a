//! Every `awfdrs` command the README shows, in its shell blocks and its
//! command table, is one a test passes to the binary; and the parsers that
//! find them.

use std::path::Path;

use crate::README;

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

pub(crate) fn use_it_block() -> String {
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

/// The test sources (this crate's tests and harness, in every
/// subdirectory), whitespace removed.
fn test_sources() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = String::new();
    read_sources(&dir.join("src"), &mut all);
    read_sources(&dir.join("tests"), &mut all);
    all.split_whitespace().collect()
}

/// Appends every `.rs` file under `dir`, subdirectories included, to `all`.
fn read_sources(dir: &Path, all: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_sources(&path, all);
        } else if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
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
