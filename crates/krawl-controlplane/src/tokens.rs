//! Bootstrap (registration) tokens scoped to label sets.
//!
//! Jobs are routed by labels (a job's labels must all be among its agent's), so the labels an
//! agent claims at registration decide which jobs it may lease and complete. A bootstrap token
//! therefore carries a grant: the label keys an agent registering with it may claim, each with
//! the one value it may have, or `*` for any value. The tokens come from a TOML file
//! (`krawl controlplane --bootstrap-tokens FILE`):
//!
//! ```toml
//! [[token]]
//! name = "dev"                                # shown in `krawl jobs agents`
//! token_file = "/etc/krawl-cp/dev.token"      # or token_env = "VAR"
//! labels = { env = "dev", team = "*" }
//! ```
//!
//! The file names where each token is, never the token itself. The single token of
//! `--bootstrap-token-file` / `KRAWL_CP_BOOTSTRAP_TOKEN` is [`LEGACY_TOKEN_NAME`] and grants no
//! labels. Errors name the file, the entry and the key; never a token.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Name of the token given with `--bootstrap-token-file` / `KRAWL_CP_BOOTSTRAP_TOKEN`.
pub const LEGACY_TOKEN_NAME: &str = "default";

/// What a registering agent may set one label key to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelGrant {
    /// `*`: any value.
    Any,
    /// This value only.
    Value(String),
}

impl LabelGrant {
    fn allows(&self, value: &str) -> bool {
        match self {
            LabelGrant::Any => true,
            LabelGrant::Value(v) => v == value,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            LabelGrant::Any => "*",
            LabelGrant::Value(v) => v,
        }
    }
}

impl From<&str> for LabelGrant {
    fn from(s: &str) -> Self {
        if s == "*" {
            LabelGrant::Any
        } else {
            LabelGrant::Value(s.to_string())
        }
    }
}

/// Where a token came from (the refusal of a label claim says what to change there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `--bootstrap-token-file` / `KRAWL_CP_BOOTSTRAP_TOKEN`: grants no labels.
    Single,
    /// A `[[token]]` of `--bootstrap-tokens` (or built by an embedder).
    Scoped,
}

/// A bootstrap token and the labels it grants. `Debug` hides the token.
#[derive(Clone)]
pub struct BootstrapToken {
    pub name: String,
    pub token: String,
    pub labels: BTreeMap<String, LabelGrant>,
    pub origin: TokenOrigin,
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("labels", &self.labels)
            .field("origin", &self.origin)
            .finish()
    }
}

impl BootstrapToken {
    /// A token granting `labels` (values `*` = any value).
    pub fn scoped<'a>(
        name: impl Into<String>,
        token: impl Into<String>,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), LabelGrant::from(v)))
                .collect(),
            origin: TokenOrigin::Scoped,
        }
    }

    /// The single token of `--bootstrap-token-file` / `KRAWL_CP_BOOTSTRAP_TOKEN`: no labels.
    pub fn single(token: impl Into<String>) -> Self {
        Self {
            name: LEGACY_TOKEN_NAME.to_string(),
            token: token.into(),
            labels: BTreeMap::new(),
            origin: TokenOrigin::Single,
        }
    }

    /// Whether an agent registering with this token may claim `labels`; the refusal names the
    /// token and the label keys and says what to write in the tokens file.
    pub fn check_claim(&self, labels: &BTreeMap<String, String>) -> Result<(), String> {
        let refused: BTreeMap<&str, &str> = labels
            .iter()
            .filter(|(k, v)| !self.labels.get(*k).is_some_and(|g| g.allows(v)))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let claimed = inline_table(refused.iter().map(|(k, v)| (*k, *v)));
        let keys = refused
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match self.origin {
            TokenOrigin::Single => {
                let name = suggested_name(labels);
                Err(format!(
                    "this agent claims the labels {}, but it registered with the bootstrap token of \
                     --bootstrap-token-file / KRAWL_CP_BOOTSTRAP_TOKEN (`{}`), which grants no labels. \
                     Labels are granted by named tokens: write a tokens file\n\n\
                     [[token]]\nname = \"{name}\"\ntoken_file = \"/etc/krawl-cp/{name}.token\"\nlabels = {}\n\n\
                     start the control plane with --bootstrap-tokens FILE, and give this agent that \
                     token (control_plane.auth.bootstrap_token in its krawl.toml); or remove the \
                     labels from the agent's [agent] labels",
                    inline_table(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    self.name,
                    inline_table(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                ))
            }
            TokenOrigin::Scoped => {
                let s = if refused.len() > 1 { "s" } else { "" };
                Err(format!(
                    "the bootstrap token `{name}` does not grant the label{s} {keys} that this \
                     agent claims ({claimed}; the token grants {granted}). An agent may claim only \
                     the labels that its token's [[token]] entry in the control plane's tokens file \
                     (--bootstrap-tokens) grants: give this agent a token whose entry has \
                     labels = {all}, or grant {claimed} in the [[token]] named \"{name}\" (a value \
                     of \"*\" allows any value), or remove the label{s} from the agent's [agent] labels",
                    name = self.name,
                    granted = if self.labels.is_empty() {
                        "no labels".to_string()
                    } else {
                        inline_table(self.labels.iter().map(|(k, g)| (k.as_str(), g.as_str())))
                    },
                    all = inline_table(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                ))
            }
        }
    }
}

/// `{ env = "prod", "app.name" = "x" }`, in TOML.
fn inline_table<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let body = pairs
        .map(|(k, v)| format!("{} = {}", toml_key(k), toml::Value::from(v)))
        .collect::<Vec<_>>()
        .join(", ");
    if body.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {body} }}")
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::from(k).to_string()
    }
}

/// A token name for the refusal's example: the claimed values, joined.
fn suggested_name(labels: &BTreeMap<String, String>) -> String {
    let name: String = labels
        .values()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .filter(|c| valid_name_char(*c))
        .take(40)
        .collect();
    if name.is_empty() {
        "scoped".to_string()
    } else {
        name
    }
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Checks a set of tokens before the server starts: at least one, every name and value
/// non-empty, names unique, no value used twice or equal to the admin token.
pub fn check_set(tokens: &[BootstrapToken], admin_token: &str) -> Result<(), String> {
    if tokens.is_empty() {
        return Err("no bootstrap token: set KRAWL_CP_BOOTSTRAP_TOKEN, pass --bootstrap-token-file FILE, or --bootstrap-tokens FILE".to_string());
    }
    let mut names = BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.name.trim().is_empty() {
            return Err(format!("bootstrap token {} has an empty name", i + 1));
        }
        if !names.insert(t.name.as_str()) {
            return Err(format!(
                "the bootstrap token name `{}` is used twice{}; give each [[token]] its own name",
                t.name,
                if t.name == LEGACY_TOKEN_NAME {
                    " (it is also the name of the --bootstrap-token-file / KRAWL_CP_BOOTSTRAP_TOKEN token)"
                } else {
                    ""
                }
            ));
        }
        if t.token.trim().is_empty() {
            return Err(format!("the bootstrap token `{}` is empty", t.name));
        }
        if t.token == admin_token {
            return Err(format!(
                "the bootstrap token `{}` is the admin token; they must differ",
                t.name
            ));
        }
        if let Some(other) = tokens[..i].iter().find(|o| o.token == t.token) {
            return Err(format!(
                "the bootstrap tokens `{}` and `{}` have the same value: an agent presenting it could not be told apart; give each its own token",
                other.name, t.name
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads `--bootstrap-tokens FILE`, and each token from its `token_file` or `token_env`
/// (`env` looks up environment variables).
pub fn load_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<BootstrapToken>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the tokens file {shown} (--bootstrap-tokens): {e}"))?;
    parse(&text, &shown.to_string(), env)
}

fn parse(
    text: &str,
    shown: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<BootstrapToken>, String> {
    // toml's own Display quotes the offending line, which may hold a token: position and message
    // only.
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| {
            let before = &text.as_bytes()[..s.start.min(text.len())];
            before.iter().filter(|b| **b == b'\n').count() + 1
        });
        format!(
            "the tokens file {shown} is not valid TOML{}: {}",
            line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            e.message().trim()
        )
    })?;
    if let Some(toml::Value::Array(entries)) = table.get("token") {
        for (i, entry) in entries.iter().enumerate() {
            if entry.get("token").is_some() {
                return Err(format!(
                    "{shown}: token[{i}] holds the token itself (`token = …`): the tokens file names where each token is, never the token; put it in a file named by token_file = \"/etc/krawl-cp/NAME.token\", or in an environment variable named by token_env = \"VAR\", and remove `token`"
                ));
            }
        }
    }
    let value = serde_json::to_value(&table)
        .map_err(|_| format!("the tokens file {shown} holds a value that is not a string, number, boolean, array or table"))?;
    let file: TokensFile =
        krawl_protocol::body::from_value(&value, &format!("tokens file {shown}"))?;
    if file.token.is_empty() {
        return Err(format!(
            "the tokens file {shown} declares no [[token]]; see `krawl controlplane --help`"
        ));
    }
    file.token
        .into_iter()
        .enumerate()
        .map(|(i, e)| entry(i, e, shown, env))
        .collect()
}

fn entry(
    i: usize,
    e: TokenEntry,
    shown: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BootstrapToken, String> {
    let at = format!("{shown}: token[{i}]");
    if e.name.is_empty() || e.name.len() > 64 || !e.name.chars().all(valid_name_char) {
        return Err(format!(
            "{at}: name must be 1 to 64 letters, digits, `-`, `_` or `.`"
        ));
    }
    let at = format!("{shown}: token `{}`", e.name);
    for (k, v) in &e.labels {
        if k.trim().is_empty() {
            return Err(format!("{at}: a label key is empty"));
        }
        if v.is_empty() {
            return Err(format!(
                "{at}: label `{k}` has an empty value; give the value agents may claim, or \"*\" for any"
            ));
        }
    }
    let token = match (&e.token_file, &e.token_env) {
        (Some(file), None) => std::fs::read_to_string(file)
            .map_err(|err| format!("{at}: cannot read token_file {}: {err}", file.display()))?,
        (None, Some(var)) => env(var).ok_or_else(|| {
            format!("{at}: token_env names the environment variable {var}, which is not set")
        })?,
        (Some(_), Some(_)) => return Err(format!("{at}: give token_file or token_env, not both")),
        (None, None) => {
            return Err(format!(
            "{at}: give token_file = \"/path/to/file\" or token_env = \"VAR\": where the token is"
        ))
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(format!(
            "{at}: the token is empty (token_file or token_env holds nothing)"
        ));
    }
    Ok(BootstrapToken {
        name: e.name,
        token,
        labels: e
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), LabelGrant::from(v.as_str())))
            .collect(),
        origin: TokenOrigin::Scoped,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "tok-canary-91c4e7";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_tokens_file_reads_tokens_from_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("dev.token");
        std::fs::write(&dev, format!("  {SECRET}-dev\n")).unwrap();
        let text = format!(
            "[[token]]\nname = \"dev\"\ntoken_file = {:?}\nlabels = {{ env = \"dev\", team = \"*\" }}\n\n\
             [[token]]\nname = \"prod\"\ntoken_env = \"PROD_TOKEN\"\nlabels = {{ env = \"prod\" }}\n",
            dev.display().to_string()
        );
        let env = |v: &str| (v == "PROD_TOKEN").then(|| format!("{SECRET}-prod"));
        let tokens = parse(&text, "t.toml", &env).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].name, "dev");
        assert_eq!(tokens[0].token, format!("{SECRET}-dev"));
        assert_eq!(tokens[0].labels["team"], LabelGrant::Any);
        assert_eq!(
            tokens[1].labels["env"],
            LabelGrant::Value("prod".to_string())
        );
        assert_eq!(tokens[1].origin, TokenOrigin::Scoped);
        assert!(!format!("{tokens:?}").contains(SECRET));
        check_set(&tokens, "admin").unwrap();
    }

    #[test]
    fn a_tokens_file_error_names_the_entry_never_the_token() {
        let refuse = |text: &str| {
            let err = parse(text, "t.toml", &no_env).unwrap_err();
            assert!(!err.contains(SECRET), "{err}");
            err
        };
        let err = refuse(&format!(
            "[[token]]\nname = \"dev\"\ntoken = \"{SECRET}\"\n"
        ));
        assert!(
            err.contains("token[0]") && err.contains("token_file") && err.contains("token_env"),
            "{err}"
        );
        let err = refuse(&format!(
            "[[token]]\nname = \"dev\"\ntoken_env = 5\nsecret = \"{SECRET}\"\n"
        ));
        assert!(err.contains("token"), "{err}");
        let err = refuse(&format!(
            "[[token]]\nname = \"dev\"\ntoken_file = {SECRET}\n"
        ));
        assert!(err.contains("not valid TOML (line 3)"), "{err}");
        let err = refuse(&format!(
            "[[token]]\nname = 7\nlabels = {{ env = \"{SECRET}\" }}\n"
        ));
        assert!(
            err.contains("field `token[0].name` must be a string"),
            "{err}"
        );
        let err = refuse("[[token]]\nname = \"dev\"\n");
        assert!(err.contains("token `dev`: give token_file"), "{err}");
        let err = refuse("[[token]]\nname = \"dev\"\ntoken_env = \"NOPE\"\n");
        assert!(err.contains("NOPE, which is not set"), "{err}");
        let err = refuse("[[token]]\nname = \"dev\"\ntoken_env = \"A\"\ntoken_file = \"/x\"\n");
        assert!(err.contains("not both"), "{err}");
        let err = refuse("[[token]]\nname = \"de v\"\ntoken_env = \"A\"\n");
        assert!(err.contains("token[0]: name must be"), "{err}");
        let err = refuse("[[token]]\nname = \"dev\"\ntoken_env = \"A\"\nlabels = { env = \"\" }\n");
        assert!(err.contains("label `env` has an empty value"), "{err}");
        let err = refuse("# nothing\n");
        assert!(err.contains("declares no [[token]]"), "{err}");
    }

    #[test]
    fn a_token_set_is_checked_for_clashes() {
        let a = BootstrapToken::scoped("a", "t1", [("env", "dev")]);
        let b = BootstrapToken::scoped("b", "t1", [("env", "prod")]);
        assert!(check_set(&[a.clone(), b], "adm")
            .unwrap_err()
            .contains("`a` and `b` have the same value"));
        let dup = BootstrapToken::scoped(LEGACY_TOKEN_NAME, "t2", []);
        let err = check_set(&[BootstrapToken::single("t3"), dup], "adm").unwrap_err();
        assert!(
            err.contains("used twice") && err.contains("--bootstrap-token-file"),
            "{err}"
        );
        assert!(check_set(std::slice::from_ref(&a), "t1")
            .unwrap_err()
            .contains("admin token"));
        assert!(check_set(&[], "adm")
            .unwrap_err()
            .contains("--bootstrap-tokens"));
        check_set(&[a, BootstrapToken::single("t4")], "adm").unwrap();
    }

    #[test]
    fn claims_are_checked_against_the_grant() {
        let dev = BootstrapToken::scoped("dev", "t", [("env", "dev"), ("team", "*")]);
        dev.check_claim(&labels(&[])).unwrap();
        dev.check_claim(&labels(&[("env", "dev"), ("team", "payments")]))
            .unwrap();
        let err = dev.check_claim(&labels(&[("env", "prod")])).unwrap_err();
        assert_eq!(
            err,
            "the bootstrap token `dev` does not grant the label `env` that this agent claims \
             ({ env = \"prod\" }; the token grants { env = \"dev\", team = \"*\" }). An agent may \
             claim only the labels that its token's [[token]] entry in the control plane's tokens \
             file (--bootstrap-tokens) grants: give this agent a token whose entry has labels = \
             { env = \"prod\" }, or grant { env = \"prod\" } in the [[token]] named \"dev\" (a value \
             of \"*\" allows any value), or remove the label from the agent's [agent] labels"
        );
        let err = dev
            .check_claim(&labels(&[("env", "dev"), ("app.kubernetes.io/name", "x")]))
            .unwrap_err();
        assert!(
            err.contains("label `app.kubernetes.io/name`")
                && err.contains("\"app.kubernetes.io/name\" = \"x\""),
            "{err}"
        );

        let single = BootstrapToken::single("t");
        single.check_claim(&labels(&[])).unwrap();
        let err = single
            .check_claim(&labels(&[("env", "prod"), ("team", "a")]))
            .unwrap_err();
        assert!(
            err.contains("--bootstrap-token-file / KRAWL_CP_BOOTSTRAP_TOKEN")
                && err.contains("grants no labels")
                && err.contains(
                    "[[token]]\nname = \"prod-a\"\ntoken_file = \"/etc/krawl-cp/prod-a.token\"\nlabels = { env = \"prod\", team = \"a\" }\n"
                )
                && err.contains("--bootstrap-tokens FILE"),
            "{err}"
        );
        // What the message tells the operator to write is a valid tokens file.
        let start = err.find("[[token]]").unwrap();
        let end = err[start..].find("\n\n").unwrap() + start;
        let example = err[start..end].replace(
            "token_file = \"/etc/krawl-cp/prod-a.token\"",
            "token_env = \"T\"",
        );
        let env = |_: &str| Some("x".to_string());
        let parsed = parse(&example, "example", &env).unwrap();
        parsed[0]
            .check_claim(&labels(&[("env", "prod"), ("team", "a")]))
            .unwrap();
    }
}
