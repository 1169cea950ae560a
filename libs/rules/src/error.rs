//! Problems found while loading rules, each with its file, key path and reason.

use std::fmt;

/// One problem in the rules: which file, where in it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    /// The file name, such as `error_codes.yaml`.
    pub file: String,
    /// The dotted key path, such as `codes.card_declined.retry_policy`;
    /// empty for a problem with the whole file.
    pub path: String,
    /// Why it is rejected.
    pub reason: String,
}

impl RulesError {
    pub(crate) fn new(file: &str, path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.reason)
        }
    }
}

impl std::error::Error for RulesError {}

/// Every problem found in one load, in file order; displays one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesErrors(Vec<RulesError>);

impl RulesErrors {
    pub(crate) fn new(errors: Vec<RulesError>) -> Self {
        Self(errors)
    }

    /// The problems.
    #[must_use]
    pub fn errors(&self) -> &[RulesError] {
        &self.0
    }

    /// How many problems there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a returned error).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for RulesErrors {
    type Item = RulesError;
    type IntoIter = std::vec::IntoIter<RulesError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for RulesErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RulesErrors {}
