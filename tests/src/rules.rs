//! Rules directories for tests: a copy of the shipped rules with some of
//! their text replaced.

use std::path::{Path, PathBuf};

/// The shipped rules files.
const FILES: [&str; 3] = [
    "error_codes.yaml",
    "retry_policies.yaml",
    "vendor_config.yaml",
];

/// A fresh copy of `config/rules` in which each `(file, shipped, changed)`
/// replaces `shipped` by `changed` in `file`. Panics when a `shipped` text
/// is not there: the shipped rules changed under the test.
pub fn rules_edited(edits: &[(&str, &str, &str)]) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules");
    let dir = std::env::temp_dir().join(format!("awfdrs-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("rules dir");
    for f in FILES {
        std::fs::copy(from.join(f), dir.join(f)).expect("copy rules");
    }
    for (file, shipped, changed) in edits {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).expect("read rules");
        assert!(text.contains(shipped), "the shipped {file} changed");
        std::fs::write(&path, text.replace(shipped, changed)).expect("write rules");
    }
    dir
}
