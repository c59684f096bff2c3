//! `--policy FILE`: a system-call mask and a jail for the guest, from a TOML file.
//!
//! Design: the file is parsed with `toml` + serde into [`PolicyFile`] (unknown keys are
//! errors), then every call name is checked against warden_abi's classification table
//! (`class::CALLS`) and turned into the kernel's [`PolicySpec`]; the kernel applies it to init
//! before its first instruction, so the whole guest runs under it (children inherit it and
//! nothing can widen it). Every error is one line: `FILE:LINE: message`.
//!
//! Format (see examples/policy.toml):
//! ```toml
//! allow = ["P", "F", "C", "J"]   # calls allowed: names, classes P/F/C/J, groups, "all"
//! deny = ["kill", "supervise"]   # removed from what allow gives
//! jail = "/srv/jail"             # confine the guest to this guest directory
//! schemes = true                 # the jail's processes may serve schemes (JAIL_SCHEMES)
//! mode = "errno"                 # a denied call fails with EPERM; "kill": SIGSYS
//! ```
//! Every key is optional. Without `allow` and `deny` there is no mask (and `mode` has no
//! effect); without `allow`, every call is allowed before `deny` is applied. Names are those
//! of `warden_abi::SYSCALLS` (`open`, `fexec`, ...); Linux-personality calls are named
//! `linux:NAME` (`linux:openat`, from `class::LINUX_CALLS`). Classes, groups (`file`,
//! `process`, `memory`, `signal`, `time`) and `all` take the calls of both ABIs; `redox` and
//! `linux` take every call of one. A Linux call missing from the table is ENOSYS under any
//! policy.

use std::path::Path;

use guest_kernel::policy::PolicySpec;
use serde::Deserialize;
use toml::Spanned;
use warden_abi::{all_calls, Selector};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    allow: Option<Vec<Spanned<String>>>,
    deny: Option<Vec<Spanned<String>>>,
    jail: Option<Spanned<String>>,
    schemes: Option<Spanned<bool>>,
    mode: Option<Mode>,
}

/// What a denied call does.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Fails with EPERM.
    Errno,
    /// Kills the process with SIGSYS.
    Kill,
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parses policy `text` (`name` is used in messages). Errors are one line.
pub fn parse(name: &str, text: &str) -> Result<PolicySpec, String> {
    let file: PolicyFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
        let message = e.message().lines().next().unwrap_or("malformed policy");
        format!("{name}{line}: {}", guest_kernel::escape_controls(message))
    })?;
    let select = |list: &[Spanned<String>]| -> Result<Vec<Selector>, String> {
        list.iter()
            .map(|item| {
                Selector::parse(item.get_ref()).ok_or_else(|| {
                    let line = line_of(text, item.span().start);
                    format!(
                        "{name}:{line}: unknown call or class {:?} (names as in `restrict --list`, classes P F C J, \
                         groups file process memory signal time, redox, linux, or all)",
                        item.get_ref()
                    )
                })
            })
            .collect()
    };
    let allow = file.allow.as_deref().map(select).transpose()?;
    let deny = file.deny.as_deref().map(select).transpose()?.unwrap_or_default();
    let masked = allow.is_some() || !deny.is_empty();
    let allow = masked.then(|| {
        all_calls()
            .filter(|c| allow.as_ref().is_none_or(|a| a.iter().any(|s| s.matches(c))))
            .filter(|c| !deny.iter().any(|s| s.matches(c)))
            .map(|c| c.number)
            .collect()
    });
    let jail = match file.jail {
        None => None,
        Some(j) if j.get_ref().starts_with('/') && !j.get_ref().contains('\0') => Some(j.into_inner().into_bytes()),
        Some(j) => {
            let line = line_of(text, j.span().start);
            return Err(format!("{name}:{line}: jail must be an absolute guest path, not {:?}", j.get_ref()));
        }
    };
    let schemes = match file.schemes {
        Some(s) if *s.get_ref() && jail.is_none() => {
            let line = line_of(text, s.span().start);
            return Err(format!(
                "{name}:{line}: schemes = true needs a jail (outside one, serving schemes is always allowed)"
            ));
        }
        Some(s) => s.into_inner(),
        None => false,
    };
    Ok(PolicySpec { allow, kill: masked && file.mode == Some(Mode::Kill), jail, schemes })
}

/// Reads and parses the policy file at `path`.
pub fn load(path: &Path) -> Result<PolicySpec, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read policy {name}: {e}"))?;
    parse(&name, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_abi::{SYS_KILL, SYS_OPEN, SYS_READ, SYS_SUPERVISE};

    #[test]
    fn classes_names_and_deny() {
        let spec =
            parse("p", "allow = [\"F\", \"open\"]\ndeny = [\"fexec\"]\nmode = \"kill\"\njail = \"/j\"\n").unwrap();
        let allow = spec.allow.unwrap();
        assert!(allow.contains(&SYS_READ) && allow.contains(&SYS_OPEN) && !allow.contains(&SYS_KILL));
        assert!(spec.kill && !spec.schemes);
        assert_eq!(spec.jail.as_deref(), Some(&b"/j"[..]));
        assert!(parse("p", "jail = \"/j\"\nschemes = true\n").unwrap().schemes);
        let spec = parse("p", "deny = [\"J\"]").unwrap();
        let allow = spec.allow.unwrap();
        assert!(allow.contains(&SYS_READ) && !allow.contains(&SYS_SUPERVISE) && !spec.kill);
        assert_eq!(parse("p", "# nothing\n").unwrap(), PolicySpec::default());
    }

    #[test]
    fn errors_are_one_line_with_a_line_number() {
        for (text, want) in [
            ("allow = [\"open\"]\nbogus = 1\n", "p:2: unknown field `bogus`"),
            ("deny = [\n  \"read\",\n  \"frobnicate\",\n]\n", "p:3: unknown call or class \"frobnicate\""),
            ("mode = \"loud\"\n", "p:1: unknown variant `loud`"),
            ("jail = \"rel\"\n", "p:1: jail must be an absolute guest path"),
            ("schemes = true\n", "p:1: schemes = true needs a jail"),
            ("allow = \"open\"\n", "p:1: invalid type"),
            ("allow = [\n", "p:"),
            // A carriage return in a quoted value (found by the `policy` fuzz target).
            ("mode=\"\\rrrp\"\n", "p:1: unknown variant `\\rrrp`"),
        ] {
            let err = parse("p", text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
            assert!(!err.contains(|c: char| c.is_control()), "{err:?}");
        }
    }

    #[test]
    fn the_example_policy_parses() {
        let text = include_str!("../examples/policy.toml");
        let spec = parse("examples/policy.toml", text).unwrap();
        assert!(spec.allow.is_some() && spec.jail.is_none() && !spec.kill);
    }
}
