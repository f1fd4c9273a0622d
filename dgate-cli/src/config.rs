//! The client's own settings, from `config.yaml` in its config directory
//! (`$XDG_CONFIG_HOME/dgate/config.yaml`). Every key is optional:
//!
//! ```yaml
//! server: https://games.example.org:50051
//! ca_cert: ~/certs/games-ca.pem   # trusted for https:// besides the system's roots
//! replay:
//!   max_idle: 5s   # longer pauses in a replay are shortened to this; 0 keeps them
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Used when neither --server nor DGATE_SERVER is given.
    #[serde(default = "default_server")]
    pub server: String,
    /// A PEM certificate (or several) trusted for `https://` servers besides
    /// the system's roots; used when neither --ca-cert nor DGATE_CA_CERT is given.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub replay: ReplayConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    #[serde(default = "default_max_idle", deserialize_with = "duration")]
    pub max_idle: Duration,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            max_idle: default_max_idle(),
        }
    }
}

fn default_max_idle() -> Duration {
    dgate_term::recording::MAX_IDLE
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("{text:?} is not a duration like \"5s\": {e}"))
    })
}

fn default_server() -> String {
    DEFAULT_SERVER.to_owned()
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            server: default_server(),
            ca_cert: None,
            replay: ReplayConfig::default(),
        }
    }
}

/// The settings file's contents, or the defaults when there is none.
pub fn load() -> Result<ClientConfig> {
    let Some(dirs) = directories::ProjectDirs::from("", "", "dgate") else {
        return Ok(ClientConfig::default());
    };
    let path = dirs.config_dir().join("config.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ClientConfig::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text).with_context(|| format!("{} is not a valid dgate client config", path.display()))
}

fn parse(text: &str) -> Result<ClientConfig> {
    if text.trim().is_empty() {
        return Ok(ClientConfig::default());
    }
    Ok(serde_saphyr::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_comes_from_the_file_or_the_default() {
        assert_eq!(parse("").expect("empty").server, DEFAULT_SERVER);
        assert_eq!(
            parse("server: http://example.org:1\n")
                .expect("server")
                .server,
            "http://example.org:1"
        );
    }

    #[test]
    fn unknown_keys_and_bad_yaml_are_errors() {
        assert!(parse("sever: http://x\n").is_err());
        assert!(parse("server: [\n").is_err());
    }
}
