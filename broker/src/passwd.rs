//! The password file: one `user:hash` line per user, the hash an argon2id PHC string
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), as Mosquitto 2.1 writes by default.
//! Blank lines and lines starting with `#` are kept as they are.
//!
//! [`PasswordFile::parse`] checks every line (a bad one is an error naming it);
//! [`PasswordFile::verify`] is slow on purpose (argon2 costs memory and time), so the broker
//! calls it off the async reactor. `midge passwd` edits a file with [`PasswordFile::set`]
//! and [`PasswordFile::remove`], keeping its comments.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A line of a file that cannot be used, and why. Shown as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The line, counting from 1 (0: the file as a whole).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl LineError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        LineError {
            line,
            message: message.into(),
        }
    }

    /// The error as `path:line: message`.
    pub fn at(&self, path: &Path) -> String {
        if self.line == 0 {
            format!("{}: {}", path.display(), self.message)
        } else {
            format!("{}:{}: {}", path.display(), self.line, self.message)
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LineError {}

/// One line of the file, as read.
#[derive(Clone, Debug)]
enum Line {
    /// A comment or a blank line, kept verbatim.
    Other(String),
    /// A user and the PHC string of their password's hash.
    User { name: String, hash: String },
}

/// A parsed password file.
#[derive(Clone, Debug, Default)]
pub struct PasswordFile {
    lines: Vec<Line>,
    /// Index into `lines` by user name.
    users: HashMap<String, usize>,
}

/// What checking a user name and password found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The user exists and the password is theirs.
    Valid,
    /// The password is wrong, or no such user exists (not told apart, on purpose).
    Invalid,
}

impl PasswordFile {
    /// Parses the text of a password file. Every `user:hash` line must have a valid user
    /// name and an argon2 PHC string; a user may appear once.
    pub fn parse(text: &str) -> Result<PasswordFile, LineError> {
        let mut file = PasswordFile::default();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                file.lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let Some((name, hash)) = trimmed.split_once(':') else {
                return Err(LineError::new(
                    number,
                    "expected `user:hash` (write entries with `midge passwd`)",
                ));
            };
            check_username(name).map_err(|m| LineError::new(number, m))?;
            check_hash(hash).map_err(|m| LineError::new(number, m))?;
            if file.users.contains_key(name) {
                return Err(LineError::new(
                    number,
                    format!("user `{name}` appears a second time"),
                ));
            }
            file.users.insert(name.to_owned(), file.lines.len());
            file.lines.push(Line::User {
                name: name.to_owned(),
                hash: hash.to_owned(),
            });
        }
        Ok(file)
    }

    /// Reads and parses a file; errors read `path:line: message`.
    pub fn load(path: &Path) -> Result<PasswordFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        PasswordFile::parse(&text).map_err(|e| e.at(path))
    }

    /// How many users the file holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file holds no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a password. Slow (an argon2 computation) even for an unknown user, so that
    /// timing does not tell which users exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> Verdict {
        let hash = match self.hash_of(user) {
            Some(hash) => hash,
            None => decoy(),
        };
        let known = self.users.contains_key(user);
        let matches = PasswordHash::new(hash)
            .is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok());
        if known && matches {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }

    fn hash_of(&self, user: &str) -> Option<&str> {
        match self.lines.get(*self.users.get(user)?)? {
            Line::User { hash, .. } => Some(hash),
            Line::Other(_) => None,
        }
    }

    /// Sets (adds or replaces) a user's password, hashing it with argon2id and a fresh salt.
    pub fn set(&mut self, user: &str, password: &[u8]) -> Result<(), String> {
        check_username(user)?;
        let hash = hash_password(password)?;
        let line = Line::User {
            name: user.to_owned(),
            hash,
        };
        match self.users.get(user) {
            Some(&index) => {
                if let Some(slot) = self.lines.get_mut(index) {
                    *slot = line;
                }
            }
            None => {
                self.users.insert(user.to_owned(), self.lines.len());
                self.lines.push(line);
            }
        }
        Ok(())
    }

    /// Removes a user; false if there was none.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(index) = self.users.remove(user) else {
            return false;
        };
        self.lines.remove(index);
        for i in self.users.values_mut() {
            if *i > index {
                *i -= 1;
            }
        }
        true
    }

    /// The file's text: its comments as they were, one line per user.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Other(raw) => text.push_str(raw),
                Line::User { name, hash } => {
                    text.push_str(name);
                    text.push(':');
                    text.push_str(hash);
                }
            }
            text.push('\n');
        }
        text
    }
}

/// Hashes a password to an argon2id PHC string (the crate's defaults: 19 MiB, 2 passes).
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// A hash to verify against when the user is unknown, computed once.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(b"midge decoy").unwrap_or_default())
}

fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    if name.contains(':') || name.chars().any(char::is_control) {
        return Err(format!(
            "user name `{}` contains `:` or a control character",
            name.escape_debug()
        ));
    }
    if name.trim() != name {
        return Err(format!("user name `{name}` starts or ends with a space"));
    }
    Ok(())
}

fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| {
        format!("the hash is not a PHC string ({e}); write entries with `midge passwd`")
    })?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => {
            return Err(format!(
                "unsupported hash algorithm `{other}`: only argon2 (as `midge passwd` writes)"
            ));
        }
    }
    // The parameters must be ones argon2 accepts, or every login would fail later.
    argon2::Params::try_from(&parsed).map_err(|e| format!("argon2 parameters not usable: {e}"))?;
    if parsed.hash.is_none() {
        return Err("the PHC string has no hash".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_verify_and_remove_round_trip_through_text() {
        let mut file = PasswordFile::parse("# users\n\n").unwrap();
        file.set("alice", b"wonderland").unwrap();
        file.set("bob", b"builder").unwrap();
        file.set("alice", b"looking-glass").unwrap();
        let text = file.to_text();
        assert!(
            text.starts_with("# users\n\nalice:$argon2id$v=19$"),
            "{text}"
        );
        let file = PasswordFile::parse(&text).unwrap();
        assert_eq!(file.len(), 2);
        assert_eq!(file.verify("alice", b"looking-glass"), Verdict::Valid);
        assert_eq!(file.verify("alice", b"wonderland"), Verdict::Invalid);
        assert_eq!(file.verify("bob", b"builder"), Verdict::Valid);
        assert_eq!(file.verify("carol", b"builder"), Verdict::Invalid);
        let mut file = file;
        assert!(file.remove("alice"));
        assert!(!file.remove("alice"));
        assert_eq!(file.verify("bob", b"builder"), Verdict::Valid);
        assert!(!file.to_text().contains("alice"));
    }

    #[test]
    fn bad_lines_are_named() {
        let hash = hash_password(b"x").unwrap();
        let cases = [
            ("alice\n".to_owned(), 1, "user:hash"),
            (
                format!("# c\nalice:{hash}\nalice:{hash}\n"),
                3,
                "second time",
            ),
            (
                "\n:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n".into(),
                2,
                "empty",
            ),
            ("bob:plaintext\n".into(), 1, "PHC"),
            ("bob:$7$101$c2FsdA$aGFzaA\n".into(), 1, "PHC"),
            (
                "bob:$pbkdf2-sha256$i=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n".into(),
                1,
                "unsupported",
            ),
            (
                "bob:$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n".into(),
                1,
                "parameters",
            ),
        ];
        for (text, line, words) in cases {
            let err = PasswordFile::parse(&text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(words), "{text:?}: {err}");
        }
        let err = PasswordFile::parse("x\n").unwrap_err();
        assert_eq!(
            err.at(Path::new("/etc/midge/passwd")),
            format!("/etc/midge/passwd:1: {}", err.message)
        );
    }
}
