//! The one glob engine of every krawl list (`[policy]`, `secrets.allow`): globset's syntax.

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::PolicyError;

/// Whether letters compare case-insensitively (host names) or exactly (secret references).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// One compiled glob. `*` matches any run of characters (`/`, `.` and `:` included), `?` one
/// character, `[abc]` one of a class, `{a,b}` either alternative.
pub(crate) fn matcher(key: &str, pattern: &str, case: Case) -> Result<GlobMatcher, PolicyError> {
    build(key, pattern, case).map(|g| g.compile_matcher())
}

fn build(key: &str, pattern: &str, case: Case) -> Result<globset::Glob, PolicyError> {
    GlobBuilder::new(pattern)
        .case_insensitive(case == Case::Insensitive)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| PolicyError::pattern(key, pattern, format!("not a valid glob: {}", e.kind())))
}

/// A list of globs under one config key, e.g. `secrets.allow`. Empty patterns are refused (they
/// match nothing and are always a mistake).
#[derive(Debug, Clone)]
pub struct GlobList {
    set: GlobSet,
    patterns: Vec<String>,
}

impl GlobList {
    pub fn new(key: &str, patterns: &[String], case: Case) -> Result<Self, PolicyError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            if p.trim().is_empty() {
                return Err(PolicyError::pattern(
                    key,
                    p,
                    "an empty pattern matches nothing; remove it",
                ));
            }
            b.add(build(key, p, case)?);
        }
        let set = b.build().map_err(|e| {
            PolicyError::pattern(key, &patterns.join(", "), format!("not valid globs: {e}"))
        })?;
        Ok(Self {
            set,
            patterns: patterns.to_vec(),
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as written, for error messages.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str], case: Case) -> GlobList {
        let v: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        GlobList::new("k", &v, case).unwrap()
    }

    #[test]
    fn star_crosses_separators_and_case_is_chosen() {
        let l = list(&["vault://secret/kafka/*"], Case::Sensitive);
        assert!(l.is_match("vault://secret/kafka/prod#password"));
        assert!(l.is_match("vault://secret/kafka/a/b"));
        assert!(!l.is_match("vault://secret/payroll#password"));
        assert!(!l.is_match("VAULT://secret/kafka/x"));
        let l = list(&["KAFKA-?.prod"], Case::Insensitive);
        assert!(l.is_match("kafka-1.prod"));
        assert!(!l.is_match("kafka-12.prod"));
        let l = list(&["{a,b}.x", "[0-9].y"], Case::Sensitive);
        assert!(l.is_match("b.x") && l.is_match("7.y") && !l.is_match("c.x"));
    }

    #[test]
    fn bad_and_empty_patterns_name_the_key() {
        let e = GlobList::new("secrets.allow", &["a[".into()], Case::Sensitive).unwrap_err();
        assert!(e.to_string().contains("secrets.allow"), "{e}");
        let e = GlobList::new("secrets.allow", &[" ".into()], Case::Sensitive).unwrap_err();
        assert!(e.to_string().contains("empty pattern"), "{e}");
        assert!(GlobList::new("k", &[], Case::Sensitive).unwrap().is_empty());
    }
}
