use crate::{Config, Env};

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="; // [7; 32]
const OLD: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="; // [9; 32]

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("awfdrs-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn no_key_is_no_keys_and_no_error() {
    let c = Config::load(None, &Env::new(), &[]).expect("valid");
    assert!(c.secrets.keys().unwrap().is_none());
}

#[test]
fn keys_come_from_the_variables_and_files() {
    let old_file = file("old-keys", &format!("# rotated out in June\n{OLD}\n"));
    let c = Config::load(
        None,
        &env(&[
            ("AWFDRS_SECRETS_KEY", KEY),
            ("AWFDRS_SECRETS_OLD_KEYS_FILE", &old_file),
        ]),
        &[],
    )
    .expect("valid");
    let keys = c.secrets.keys().unwrap().unwrap();
    assert_eq!(keys.current, [7; 32]);
    assert_eq!(keys.old, vec![[9; 32]]);

    let key_file = file("key", &format!("{KEY}\n"));
    let c = Config::load(
        None,
        &env(&[
            ("AWFDRS_SECRETS_KEY_FILE", &key_file),
            ("AWFDRS_SECRETS_OLD_KEYS", &format!("{OLD}, {OLD}")),
        ]),
        &[],
    )
    .expect("valid");
    let keys = c.secrets.keys().unwrap().unwrap();
    assert_eq!(keys.current, [7; 32]);
    assert_eq!(keys.old.len(), 2);
}

#[test]
fn bad_keys_are_reported_with_their_key_path_and_never_shown() {
    let errs = Config::load(
        None,
        &env(&[
            ("AWFDRS_SECRETS_KEY", "c2hvcnQ="),
            ("AWFDRS_SECRETS_OLD_KEYS", "not*base64"),
            (
                "AWFDRS_SECRETS_OLD_KEYS_FILE",
                "/nonexistent/awfdrs-old-keys",
            ),
        ]),
        &[],
    )
    .expect_err("invalid keys");
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["secrets.key", "secrets.old_keys", "secrets.old_keys_file"]
    );
    let text = errs.to_string();
    assert!(text.contains("5 bytes, not 32"), "{text}");
    assert!(
        !text.contains("c2hvcnQ") && !text.contains("not*base64"),
        "{text}"
    );
}

#[test]
fn the_key_is_given_once_and_old_keys_need_a_current_one() {
    let key_file = file("twice", KEY);
    let errs = Config::load(
        None,
        &env(&[
            ("AWFDRS_SECRETS_KEY", KEY),
            ("AWFDRS_SECRETS_KEY_FILE", &key_file),
        ]),
        &[],
    )
    .expect_err("twice");
    assert_eq!(errs.0[0].path, "secrets.key");
    let errs = Config::load(None, &env(&[("AWFDRS_SECRETS_OLD_KEYS", OLD)]), &[])
        .expect_err("old without current");
    assert_eq!(errs.0[0].path, "secrets.old_keys");
}

#[test]
fn keys_never_appear_in_debug_output() {
    let c = Config::load(
        None,
        &env(&[
            ("AWFDRS_SECRETS_KEY", KEY),
            ("AWFDRS_SECRETS_OLD_KEYS", OLD),
        ]),
        &[],
    )
    .expect("valid");
    let shown = format!("{c:?} {:?}", c.secrets.keys());
    assert!(!shown.contains(KEY) && !shown.contains(OLD), "{shown}");
}
