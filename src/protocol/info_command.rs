//! One info command, parsed in both grammars it may arrive in, and its errors.
//!
//! - Aerospike's: `name[<sep>params]`, where the name ends at the first `/`, `:` or `;` and
//!   the parameters are `k=v;k=v` (after `:`) or a path `a/b` (after `/`).
//! - The seed's: `name ARG ARG ...`, words separated by spaces.
//!
//! Both are kept on the parsed command; each handler asks for the form it understands, and
//! every error is an [`InfoError`], rendered `ERROR:<code>:<message>` in one place.

use storage::record::ResultCode;

/// A refused info command: Aerospike's result code and a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct InfoError {
    pub code: ResultCode,
    pub message: String,
}

impl InfoError {
    pub fn new(code: ResultCode, message: impl Into<String>) -> InfoError {
        InfoError {
            code,
            message: message.into(),
        }
    }

    pub fn parameter(message: impl Into<String>) -> InfoError {
        InfoError::new(ResultCode::Parameter, message)
    }

    /// `ERROR:<code>:<message>`; code 1 (unknown) prints no number, as Aerospike does.
    pub fn render(&self) -> String {
        let message = self.message.replace(['\t', '\n'], " ");
        match self.code as u8 {
            1 => format!("ERROR::{message}"),
            c => format!("ERROR:{c}:{message}"),
        }
    }

    /// `ERROR:20:namespace NS not found`.
    pub fn no_namespace(name: &str) -> InfoError {
        InfoError::new(ResultCode::Namespace, format!("namespace {name} not found"))
    }

    pub fn unrecognized() -> InfoError {
        InfoError::parameter("unrecognized command")
    }
}

impl From<storage::catalog::CatalogError> for InfoError {
    fn from(e: storage::catalog::CatalogError) -> InfoError {
        InfoError::new(e.code, e.message)
    }
}

/// The answer of one info command: its value or an error.
pub type InfoResult = Result<String, InfoError>;

/// One command as received, with both grammars' views of its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoCommand<'a> {
    /// The command name (before the first `/`, `:`, `;` or space).
    pub name: &'a str,
    /// The separator that ended the name, if any.
    pub sep: Option<char>,
    /// Everything after the separator.
    pub rest: &'a str,
}

impl<'a> InfoCommand<'a> {
    pub fn parse(raw: &'a str) -> InfoCommand<'a> {
        match raw.find(['/', ':', ';', ' ']) {
            Some(i) => InfoCommand {
                name: &raw[..i],
                sep: raw[i..].chars().next(),
                rest: &raw[i + 1..],
            },
            None => InfoCommand {
                name: raw,
                sep: None,
                rest: "",
            },
        }
    }

    /// The seed's space-separated arguments (empty unless the name ended at a space).
    pub fn words(&self) -> Vec<&'a str> {
        match self.sep {
            Some(' ') => self.rest.split_whitespace().collect(),
            _ => Vec::new(),
        }
    }

    /// The `/`-separated path after the name (`sets/ns/set` → `["ns", "set"]`); an empty
    /// path element is kept, so `sets/` asks for the empty name.
    pub fn path(&self) -> Vec<&'a str> {
        match self.sep {
            Some('/') => self.rest.split('/').collect(),
            Some(':') if !self.rest.contains('=') && !self.rest.is_empty() => {
                self.rest.split('/').collect()
            }
            _ => Vec::new(),
        }
    }

    /// Aerospike's `k=v;k=v` parameters.
    pub fn params(&self) -> Params<'a> {
        let text = match self.sep {
            Some(':') | Some(';') => self.rest,
            _ => "",
        };
        Params::parse(text)
    }

    /// Whether any arguments came in the seed's form.
    pub fn is_seed_form(&self) -> bool {
        self.sep == Some(' ')
    }
}

/// `k=v;k=v` parameters, in order. A value runs to the next `;`; keys match exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    pairs: Vec<(&'a str, Option<&'a str>)>,
}

/// The error code Aerospike uses for a problem with a parameter: NAMESPACE for the namespace
/// key, PARAMETER for the rest.
fn code_for(key: &str) -> ResultCode {
    if key == "namespace" || key == "ns" || key == "id" {
        ResultCode::Namespace
    } else {
        ResultCode::Parameter
    }
}

impl<'a> Params<'a> {
    pub fn parse(text: &'a str) -> Params<'a> {
        let pairs = text
            .split(';')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (kv, None),
            })
            .collect();
        Params { pairs }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Keys in the order given.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.pairs.iter().map(|(k, _)| *k)
    }

    /// The value of the first of `keys` present (aliases, newest first). A key given without
    /// `=` or with an empty value is `missing '<k>' value`.
    pub fn get(&self, keys: &[&str]) -> Result<Option<&'a str>, InfoError> {
        for key in keys {
            if let Some((k, v)) = self.pairs.iter().find(|(k, _)| k == key) {
                return match v {
                    Some(v) if !v.is_empty() => Ok(Some(v)),
                    _ => Err(InfoError::new(code_for(k), format!("missing '{k}' value"))),
                };
            }
        }
        Ok(None)
    }

    /// Like [`Params::get`], but absent is `missing '<k>'`.
    pub fn required(&self, keys: &[&str]) -> Result<&'a str, InfoError> {
        let first = keys.first().copied().unwrap_or_default();
        self.get(keys)?
            .ok_or_else(|| InfoError::new(code_for(first), format!("missing '{first}'")))
    }

    /// An optional unsigned number.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, InfoError> {
        match self.get(&[key])? {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                InfoError::parameter(format!("'{key}' value {v:?} is not a valid number"))
            }),
        }
    }

    /// An optional `true`/`false`.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, InfoError> {
        match self.get(&[key])? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(InfoError::parameter(format!(
                "'{key}' value {v:?} is not true or false"
            ))),
        }
    }

    /// Refuse keys outside `allowed` (used where a typo would silently change meaning, such
    /// as namespace settings).
    pub fn only(&self, allowed: &[&str]) -> Result<(), InfoError> {
        match self.keys().find(|k| !allowed.contains(k)) {
            Some(k) => Err(InfoError::parameter(format!("unknown parameter '{k}'"))),
            None => Ok(()),
        }
    }
}

/// A TTL with Aerospike's optional unit suffix (`s`, `m`, `h`, `d`), in seconds.
pub fn parse_ttl(key: &str, v: &str) -> Result<u32, InfoError> {
    let bad = || InfoError::parameter(format!("'{key}' value {v:?} is not a valid TTL"));
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 's'),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    // Aerospike caps TTLs at 10 years.
    n.checked_mul(mult)
        .filter(|s| *s <= 10 * 365 * 86_400)
        .map(|s| s as u32)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_end_at_the_first_separator() {
        let c = InfoCommand::parse("sets/test/demo");
        assert_eq!((c.name, c.path()), ("sets", vec!["test", "demo"]));
        let c = InfoCommand::parse("namespace:test");
        assert_eq!((c.name, c.path()), ("namespace", vec!["test"]));
        let c = InfoCommand::parse("recluster:");
        assert_eq!((c.name, c.params().is_empty()), ("recluster", true));
        let c = InfoCommand::parse("statistics");
        assert_eq!((c.name, c.sep), ("statistics", None));
        let c = InfoCommand::parse("get-config:context=namespace;id=test");
        assert_eq!(c.name, "get-config");
        assert_eq!(c.params().get(&["namespace", "id"]), Ok(Some("test")));
        assert_eq!(c.path(), Vec::<&str>::new());
    }

    #[test]
    fn seed_words() {
        let c = InfoCommand::parse("create-set ns test set");
        assert_eq!(c.name, "create-set");
        assert_eq!(c.words(), vec!["ns", "test", "set"]);
        assert!(c.is_seed_form());
        assert!(c.params().is_empty());
        let c = InfoCommand::parse("create-namespace  ns2 ");
        assert_eq!(c.words(), vec!["ns2"]);
        assert!(InfoCommand::parse("show-namespaces").words().is_empty());
    }

    #[test]
    fn parameter_errors_carry_aerospike_codes() {
        let p = Params::parse("namespace=;set=;x");
        assert_eq!(
            p.required(&["namespace"]).unwrap_err().render(),
            "ERROR:20:missing 'namespace' value"
        );
        assert_eq!(
            p.required(&["set"]).unwrap_err().render(),
            "ERROR:4:missing 'set' value"
        );
        assert_eq!(
            p.required(&["x"]).unwrap_err().render(),
            "ERROR:4:missing 'x' value"
        );
        let empty = Params::parse("");
        assert_eq!(
            empty.required(&["namespace", "ns"]).unwrap_err().render(),
            "ERROR:20:missing 'namespace'"
        );
        assert_eq!(
            Params::parse("ns=a").required(&["namespace", "ns"]),
            Ok("a")
        );
        let p = Params::parse("replication-factor=two;flag=maybe;bogus=1");
        assert_eq!(
            p.number::<usize>("replication-factor").unwrap_err().code,
            ResultCode::Parameter
        );
        assert!(p.boolean("flag").is_err());
        assert_eq!(
            p.only(&["replication-factor", "flag"])
                .unwrap_err()
                .render(),
            "ERROR:4:unknown parameter 'bogus'"
        );
        assert_eq!(
            InfoError::new(ResultCode::ServerError, "x").render(),
            "ERROR::x"
        );
    }

    #[test]
    fn ttls_take_units() {
        assert_eq!(parse_ttl("t", "3600"), Ok(3600));
        assert_eq!(parse_ttl("t", "2h"), Ok(7200));
        assert_eq!(parse_ttl("t", "1D"), Ok(86_400));
        assert!(parse_ttl("t", "").is_err());
        assert!(parse_ttl("t", "5x").is_err());
        assert!(parse_ttl("t", "-1").is_err());
        assert!(parse_ttl("t", "99999999999").is_err());
    }
}
