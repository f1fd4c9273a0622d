//! The SSH menus' banners: text files (`menu.banners.anonymous` and
//! `menu.banners.user`; the ones in `configs/banners/` are compiled in) with
//! `$SERVERID`, `$USERNAME`, `$DATE`, `$TIME` and `$VERSION` replaced when shown.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;

use crate::config::BannersConfig;

const ANONYMOUS: &str = include_str!("../../../configs/banners/anonymous.txt");
const USER: &str = include_str!("../../../configs/banners/user.txt");

/// The longest banner file accepted.
const MAX_BANNER_BYTES: u64 = 16 * 1024;

#[derive(Debug)]
pub struct Banners {
    anonymous: String,
    user: String,
    server_id: String,
}

impl Banners {
    pub fn load(config: &BannersConfig, server_id: &str) -> anyhow::Result<Self> {
        let read = |path: &Option<std::path::PathBuf>, default: &str| -> anyhow::Result<String> {
            match path {
                Some(path) => read_banner(path),
                None => Ok(default.to_owned()),
            }
        };
        Ok(Self {
            anonymous: read(&config.anonymous, ANONYMOUS)?,
            user: read(&config.user, USER)?,
            server_id: server_id.to_owned(),
        })
    }

    /// The banner for `username` (or the anonymous one), ready for a raw terminal.
    pub fn render(&self, username: Option<&str>, now: SystemTime) -> String {
        let template = if username.is_some() {
            &self.user
        } else {
            &self.anonymous
        };
        let stamp = humantime::format_rfc3339_seconds(now).to_string();
        let (date, time) = stamp
            .trim_end_matches('Z')
            .split_once('T')
            .unwrap_or((&stamp, ""));
        template
            .replace("$SERVERID", &self.server_id)
            .replace("$USERNAME", username.unwrap_or("Anonymous"))
            .replace("$DATE", date)
            .replace("$TIME", time)
            .replace("$VERSION", env!("CARGO_PKG_VERSION"))
            .replace('\n', "\r\n")
    }
}

fn read_banner(path: &Path) -> anyhow::Result<String> {
    let length = std::fs::metadata(path)
        .with_context(|| format!("reading the banner {}", path.display()))?
        .len();
    anyhow::ensure!(
        length <= MAX_BANNER_BYTES,
        "the banner {} is over {} KiB",
        path.display(),
        MAX_BANNER_BYTES / 1024
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the banner {} (UTF-8 text)", path.display()))?;
    // Escape sequences in a banner would be sent as they are: allow colours
    // and such, but nothing else that is a control character.
    Ok(text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\x1b'))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_replaced_and_lines_end_for_a_raw_terminal() {
        let banners =
            Banners::load(&BannersConfig::default(), "nethack.example").expect("defaults");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_751_770_604);
        let anonymous = banners.render(None, at);
        assert!(anonymous.contains("nethack.example"));
        assert!(anonymous.contains("2025-07-06 02:56:44 UTC"));
        assert!(anonymous.contains("l) Log in"));
        assert!(!anonymous.contains('$'));
        assert!(!anonymous.replace("\r\n", "").contains('\n'));
        let user = banners.render(Some("alice"), at);
        assert!(user.contains("Logged in as alice."));
        assert!(user.contains("p) Play a game"));
    }

    #[test]
    fn banner_files_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("banner.txt");
        std::fs::write(&path, "Hello $USERNAME\x07\n").expect("write");
        let config = BannersConfig {
            anonymous: Some(path.clone()),
            user: None,
        };
        let banners = Banners::load(&config, "x").expect("load");
        assert_eq!(
            banners.render(None, SystemTime::UNIX_EPOCH),
            "Hello Anonymous\r\n"
        );
        std::fs::write(&path, vec![b'a'; 20_000]).expect("write");
        assert!(Banners::load(&config, "x").is_err());
        let missing = BannersConfig {
            anonymous: Some(dir.path().join("missing")),
            user: None,
        };
        assert!(Banners::load(&missing, "x").is_err());
    }
}
