//! Fuzz target `files`: arbitrary text through the password file, ACL file and configuration
//! parsers.
//!
//! Input layout: byte 0 picks the parser (its value modulo 3: 0 password file, 1 ACL,
//! 2 configuration); the rest is the
//! file's text (inputs that are not UTF-8 are skipped: the broker reads files as UTF-8 and
//! reports a file that is not as an I/O error before parsing).
//!
//! Checks:
//! - never a panic;
//! - an error names a line of the text (1 to the number of lines);
//! - a password file that parses writes back (`to_text`) to text that parses to the same
//!   users, and removing every user leaves a file that parses with none;
//! - an ACL that parses answers `allows` for every word of the text used as a user name,
//!   client id and topic, in every action, without panicking;
//! - a configuration error names a line of the text, or none (0); a configuration that
//!   parses validates without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use midge_broker::acl::{Acl, Action};
use midge_broker::Config;
use midge_broker::passwd::{LineError, PasswordFile};

fn check_line(text: &str, error: &LineError) {
    let lines = text.lines().count();
    assert!(error.line >= 1 && error.line <= lines, "{error} in {lines} lines");
}

fn password_file(text: &str) {
    let file = match PasswordFile::parse(text) {
        Ok(file) => file,
        Err(e) => return check_line(text, &e),
    };
    let again = PasswordFile::parse(&file.to_text()).expect("what to_text writes parses");
    assert_eq!(again.len(), file.len());
    let users: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(user, _)| user))
        .filter(|l| !l.starts_with('#'))
        .collect();
    let mut emptied = again;
    for user in users {
        emptied.remove(user);
    }
    assert!(emptied.is_empty(), "every user line names a user");
    assert!(PasswordFile::parse(&emptied.to_text()).is_ok());
}

fn acl(text: &str) {
    let acl = match Acl::parse(text) {
        Ok(acl) => acl,
        Err(e) => return check_line(text, &e),
    };
    let words: Vec<&str> = text.split_whitespace().take(16).collect();
    for &word in &words {
        for action in [Action::Publish, Action::Subscribe, Action::Receive] {
            for user in [None, words.first().copied()] {
                let _ = acl.allows(user, word, action, word);
            }
        }
    }
}

fn config(text: &str) {
    match Config::from_toml(text) {
        Ok(config) => {
            let _ = config.validate();
        }
        Err(e) if e.line == 0 => {}
        Err(e) => check_line(text, &e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => password_file(text),
        1 => acl(text),
        _ => config(text),
    }
});
