//! Can the service's user use what the config names? `config check` is usually run by an admin as
//! root, who can read everything: a root-owned 0600 secret file then passes, and the service,
//! running as `mde-alerts`, fails at its first sign-in. So the check is made again as the unit's
//! `User=` would see it, by the permission bits of each path and its parent directories.
//!
//! Bits, not `access(2)`: the question is about another user, and switching to it needs
//! privileges the admin may not have. ACLs and capabilities are not read; a path they open is
//! reported only when its bits alone would refuse, which says so.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::{AuthMethod, Config, SecretSource, Warning};

/// The unit files `config check` reads `User=` from, in systemd's order of precedence.
const UNITS: [&str; 3] = [
    "/etc/systemd/system/mde-alerts.service",
    "/usr/lib/systemd/system/mde-alerts.service",
    "/lib/systemd/system/mde-alerts.service",
];

/// The user the packaged unit runs as.
const DEFAULT_USER: &str = "mde-alerts";

/// A user account, as the kernel judges its access.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// Its name.
    pub name: String,
    /// Where the name came from, for messages ("the unit's User=").
    pub from: String,
    uid: u32,
    groups: Vec<u32>,
}

impl Account {
    /// The service's user: `$MDE_ALERTS_SERVICE_USER`, else the installed unit's `User=`, else
    /// `mde-alerts`; `None` when no such account exists here (nothing installed yet), or when it
    /// is the user running this command (its own checks already told).
    pub(crate) fn of_service() -> Option<Account> {
        let (name, from) = match std::env::var("MDE_ALERTS_SERVICE_USER") {
            Ok(n) if !n.is_empty() => (n, "MDE_ALERTS_SERVICE_USER".to_owned()),
            _ => UNITS
                .iter()
                .find_map(|u| {
                    let text = std::fs::read_to_string(u).ok()?;
                    unit_user(&text).map(|n| (n, format!("User= in {u}")))
                })
                .unwrap_or_else(|| (DEFAULT_USER.to_owned(), "the packaged unit's user".into())),
        };
        let user = User::from_name(&name).ok()??;
        if user.uid == Uid::effective() {
            return None;
        }
        let cname = std::ffi::CString::new(name.clone()).ok()?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .unwrap_or_else(|_| vec![user.gid])
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Some(Account {
            name,
            from,
            uid: user.uid.as_raw(),
            groups,
        })
    }

    /// An account of these ids, for tests.
    #[cfg(test)]
    fn of_ids(uid: u32, groups: Vec<u32>) -> Account {
        Account {
            name: "svc".into(),
            from: "test".into(),
            uid,
            groups,
        }
    }

    /// The permission bits (`rwx` as 4, 2, 1) this account has on a file of `meta`.
    fn bits(&self, meta: &std::fs::Metadata) -> u32 {
        let mode = meta.mode();
        if self.uid == 0 {
            return 7;
        }
        if meta.uid() == self.uid {
            (mode >> 6) & 7
        } else if self.groups.contains(&meta.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        }
    }
}

/// `User=` of a unit file's text (the last one wins, as in systemd).
fn unit_user(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("User="))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}

/// What the service must be able to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Read a file.
    Read,
    /// Read and write a file.
    ReadWrite,
    /// Create files in a directory.
    CreateIn,
}

/// Why `account` cannot use `path`, when it cannot: the first path on the way that refuses, its
/// owner and mode.
fn denied(account: &Account, path: &Path, need: Need) -> Option<String> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // Every directory on the way must let it through.
    for dir in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if account.bits(&meta) & 1 == 0 {
            return Some(format!(
                "cannot enter the directory {} ({})",
                dir.display(),
                owner_and_mode(&meta)
            ));
        }
    }
    let meta = std::fs::metadata(&path).ok()?;
    let (want, verb) = match need {
        Need::Read => (4, "read"),
        Need::ReadWrite => (6, "read and write"),
        Need::CreateIn => (3, "create files in"),
    };
    (account.bits(&meta) & want != want).then(|| {
        format!(
            "cannot {verb} {} ({})",
            path.display(),
            owner_and_mode(&meta)
        )
    })
}

/// `owner root:root, mode 0600`.
fn owner_and_mode(meta: &std::fs::Metadata) -> String {
    let user = User::from_uid(Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    format!("owner {user}:{group}, mode {:04o}", meta.mode() & 0o7777)
}

/// Every path the service reads or writes, with the key that names it and the fix.
fn paths(config: &Config) -> Vec<(PathBuf, Need, String, &'static str)> {
    let secret_fix = crate::config::SECRET_FILE_FIX;
    let mut out = vec![(
        config.path.clone(),
        Need::Read,
        "the config file".to_owned(),
        "install it readable by the service's group: install -m 0640 -g mde-alerts",
    )];
    let secret = |s: &SecretSource, out: &mut Vec<_>| {
        if let SecretSource::File { key, path } = s {
            out.push((path.clone(), Need::Read, key.clone(), secret_fix));
        }
    };
    for t in &config.tenants {
        match &t.auth {
            AuthMethod::ClientSecret(s) => secret(s, &mut out),
            AuthMethod::Certificate {
                certificate_file,
                private_key_file,
                ..
            } => {
                out.push((
                    certificate_file.clone(),
                    Need::Read,
                    t.key("certificate_file"),
                    secret_fix,
                ));
                if let Some(k) = private_key_file {
                    out.push((k.clone(), Need::Read, t.key("private_key_file"), secret_fix));
                }
            }
            AuthMethod::Password {
                password,
                client_secret,
                ..
            } => {
                secret(password, &mut out);
                if let Some(s) = client_secret {
                    secret(s, &mut out);
                }
            }
        }
    }
    let store = &config.store.path;
    let store_fix = "let the unit's StateDirectory= own it (the default /var/lib/mde-alerts), or chown it to the service's user";
    if store.exists() {
        out.push((
            store.clone(),
            Need::ReadWrite,
            "store.path".into(),
            store_fix,
        ));
    }
    if let Some(dir) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        out.push((
            dir.to_path_buf(),
            Need::CreateIn,
            "store.path".into(),
            store_fix,
        ));
    }
    for (i, e) in config.exports.iter().enumerate() {
        out.push((
            e.dir.clone(),
            Need::CreateIn,
            format!("exports[{i}].dir"),
            "chown the directory to the service's user, or point dir under /var/lib/mde-alerts",
        ));
    }
    out
}

/// What `account` (the service's user) cannot use of `config`, one warning per path.
pub(crate) fn warnings(config: &Config, account: &Account) -> Vec<Warning> {
    paths(config)
        .into_iter()
        .filter_map(|(path, need, key, fix)| {
            let why = denied(account, &path, need)?;
            Some(Warning::new(
                format!(
                    "{key}: the service's user {} ({}) {why}: the service will fail where this command, run as another user, passed",
                    account.name, account.from
                ),
                fix,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_bits_decide_by_owner_then_group_then_others() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "x").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        let (owner, group) = (meta.uid(), meta.gid());
        let stranger = Account::of_ids(owner + 4242, vec![group + 4242]);
        let member = Account::of_ids(owner + 4242, vec![group]);
        chmod(&f, 0o600);
        assert!(
            denied(&stranger, &f, Need::Read)
                .unwrap()
                .contains("mode 0600")
        );
        assert!(denied(&member, &f, Need::Read).is_some());
        chmod(&f, 0o640);
        assert!(denied(&member, &f, Need::Read).is_none());
        assert!(denied(&member, &f, Need::ReadWrite).is_some());
        assert!(denied(&stranger, &f, Need::Read).is_some());
        chmod(&f, 0o644);
        assert!(denied(&stranger, &f, Need::Read).is_none());
        // A directory on the way that does not let the user through.
        chmod(dir.path(), 0o700);
        let why = denied(&stranger, &f, Need::Read).unwrap();
        assert!(why.contains("cannot enter the directory"), "{why}");
        chmod(dir.path(), 0o755);
        assert!(denied(&Account::of_ids(0, vec![]), &f, Need::ReadWrite).is_none());
    }

    #[test]
    fn the_unit_names_its_user_and_the_last_line_wins() {
        assert_eq!(
            unit_user("[Service]\nUser=first\nGroup=x\nUser= mde \n"),
            Some("mde".into())
        );
        assert_eq!(unit_user("[Service]\nDynamicUser=yes\n"), None);
    }
}
