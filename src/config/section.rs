//! Shared helpers for reading one config section, used by the core sections
//! and by each channel's `settings.rs`: typed values with a problem per bad
//! key (and how to fix it), ports, lists, paths taken from the config file's
//! directory, and secrets named by an environment variable or a file.
//!
//! Secrets are not read while validating: a [`SecretSource`] says where the
//! secret is, and is read (through an injected [`Env`]) only by the command
//! that needs it, so `concierge report` never asks for the mail password.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::Problem;
use crate::core::duration::parse_duration;

/// Where environment variables come from: the process, or a map in tests.
pub trait Env: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret is kept, as configured (`*_env` or `*_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `key` names the environment variable `var`.
    Env { key: String, var: String },
    /// `key` names the file `path`.
    File { key: String, path: PathBuf },
}

impl SecretSource {
    /// Reads the secret now; a problem names the key and the fix.
    pub fn read(&self, env: &dyn Env, what: &str) -> Result<Secret, Problem> {
        match self {
            SecretSource::Env { key, var } => match env.var(var) {
                Some(v) if !v.is_empty() => Ok(Secret(v)),
                _ => {
                    Err(Problem { key: key.clone(), message: format!("${var} is not set; export it with the {what}") })
                }
            },
            SecretSource::File { key, path } => match crate::input::read_file(path, 64 << 10) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim_end_matches(['\n', '\r']).to_string())),
                Ok(_) => Err(Problem {
                    key: key.clone(),
                    message: format!("{} is empty; write the {what} into it", path.display()),
                }),
                Err(e) => Err(Problem { key: key.clone(), message: e }),
            },
        }
    }
}

/// The table `[name]` of `root`, if present; every key not in `known` and a
/// `name` that is not a table are problems.
pub fn table<'a>(root: &'a Table, name: &str, known: &[&str], problems: &mut Vec<Problem>) -> Option<&'a Table> {
    match root.get(name) {
        None => None,
        Some(Value::Table(t)) => {
            for key in t.keys().filter(|k| !known.contains(&k.as_str())) {
                problems.push(Problem {
                    key: format!("{name}.{key}"),
                    message: format!("unknown key; the keys of [{name}] are: {}", known.join(", ")),
                });
            }
            Some(t)
        }
        Some(_) => {
            problems.push(Problem {
                key: name.into(),
                message: format!("must be a table; write it as a [{name}] section"),
            });
            None
        }
    }
}

/// One `[name]` table being validated; problems are collected, never thrown.
pub struct Section<'a> {
    pub name: &'a str,
    pub table: &'a Table,
    problems: &'a mut Vec<Problem>,
    dir: Option<&'a Path>,
    /// When set, secrets are also read now (for `concierge run`), so a
    /// missing one is reported with every other problem.
    check_secrets: Option<&'a dyn Env>,
}

impl<'a> Section<'a> {
    pub fn new(name: &'a str, table: &'a Table, problems: &'a mut Vec<Problem>, dir: Option<&'a Path>) -> Self {
        Section { name, table, problems, dir, check_secrets: None }
    }

    /// Also checks, through `env`, that every secret named here can be read.
    pub fn checking_secrets(mut self, env: Option<&'a dyn Env>) -> Self {
        self.check_secrets = env;
        self
    }

    /// The dotted key, `name.key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        let key = self.key(key);
        self.problems.push(Problem { key, message: message.into() });
    }

    /// How many problems have been found so far (in the whole file).
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    pub fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.table.get(key)? {
            Value::String(s) => Some(s),
            other => {
                let t = other.type_str();
                self.problem(key, format!("must be a string, not {t}"));
                None
            }
        }
    }

    /// A string that must be there and not blank; `example` shows how.
    pub fn required(&mut self, key: &str, example: &str) -> String {
        match self.string(key) {
            Some(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                self.problem(key, format!("is missing; e.g. {key} = \"{example}\""));
                String::new()
            }
        }
    }

    pub fn flag(&mut self, key: &str) -> Option<bool> {
        match self.table.get(key)? {
            Value::Boolean(b) => Some(*b),
            _ => {
                self.problem(key, "must be true or false");
                None
            }
        }
    }

    pub fn port(&mut self, key: &str, default: u16) -> u16 {
        match self.table.get(key) {
            None => default,
            Some(Value::Integer(n)) if (1..=65535).contains(n) => *n as u16,
            Some(_) => {
                self.problem(key, "must be a port number from 1 to 65535");
                default
            }
        }
    }

    /// A list of strings, trimmed (empty when absent).
    pub fn strings(&mut self, key: &str) -> Vec<String> {
        match self.table.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_str) => {
                items.iter().filter_map(|i| i.as_str().map(|s| s.trim().to_string())).collect()
            }
            Some(_) => {
                self.problem(key, "must be a list of strings");
                Vec::new()
            }
        }
    }

    /// One string or a list of them, trimmed (empty when absent).
    pub fn string_or_strings(&mut self, key: &str) -> Vec<String> {
        match self.table.get(key) {
            Some(Value::String(one)) => vec![one.trim().to_string()],
            Some(Value::Array(items)) if items.iter().all(Value::is_str) => self.strings(key),
            None => Vec::new(),
            Some(_) => {
                self.problem(key, "must be a string or a list of strings");
                Vec::new()
            }
        }
    }

    /// A duration such as `"90m"`, in seconds.
    pub fn duration(&mut self, key: &str) -> Option<i64> {
        match parse_duration(self.string(key)?) {
            Ok(secs) => Some(secs),
            Err(e) => {
                self.problem(key, e.0);
                None
            }
        }
    }

    /// A path, taken from the config file's directory when relative.
    pub fn path(&mut self, key: &str) -> Option<PathBuf> {
        let p = self.string(key)?;
        Some(match self.dir {
            Some(dir) if Path::new(p).is_relative() => dir.join(p),
            _ => PathBuf::from(p),
        })
    }

    /// The secret named by `{prefix}_env` or `{prefix}_file` (exactly one);
    /// `example_var` shows how when both are missing.
    pub fn secret(&mut self, prefix: &str, what: &str, example_var: &str) -> Option<SecretSource> {
        let source = self.secret_source(prefix, what, example_var)?;
        if let Some(env) = self.check_secrets
            && let Err(p) = source.read(env, what)
        {
            self.problems.push(p);
        }
        Some(source)
    }

    /// A secret's source given by `default` when the section names none,
    /// checked like [`Section::secret`].
    pub fn secret_or(
        &mut self,
        prefix: &str,
        what: &str,
        example_var: &str,
        default: SecretSource,
    ) -> Option<SecretSource> {
        let named =
            self.table.contains_key(&format!("{prefix}_env")) || self.table.contains_key(&format!("{prefix}_file"));
        if named {
            return self.secret(prefix, what, example_var);
        }
        if let Some(env) = self.check_secrets
            && let Err(p) = default.read(env, what)
        {
            self.problems.push(p);
        }
        Some(default)
    }

    fn secret_source(&mut self, prefix: &str, what: &str, example_var: &str) -> Option<SecretSource> {
        let (env_key, file_key) = (format!("{prefix}_env"), format!("{prefix}_file"));
        match (self.string(&env_key), self.path(&file_key)) {
            (Some(_), Some(_)) => {
                self.problem(&env_key, format!("set either {env_key} or {file_key}, not both"));
                None
            }
            (Some(var), None) if !var.trim().is_empty() => {
                Some(SecretSource::Env { key: self.key(&env_key), var: var.trim().to_string() })
            }
            (None, Some(path)) => Some(SecretSource::File { key: self.key(&file_key), path }),
            _ => {
                self.problem(
                    &env_key,
                    format!(
                        "is missing; name the environment variable holding the {what}, e.g. {env_key} = \"{example_var}\" (or use {file_key})"
                    ),
                );
                None
            }
        }
    }
}
