//! The login tokens this user holds, one per server URL, in
//! `$XDG_CONFIG_HOME/dgate/tokens.json` (mode 0600, written atomically).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub username: String,
    pub token: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    servers: BTreeMap<String, Saved>,
}

fn path() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "dgate")
        .context("cannot find a config directory (is HOME set?)")?;
    Ok(dirs.config_dir().join("tokens.json"))
}

fn load() -> Result<TokenFile> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a dgate token file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn store(file: &TokenFile) -> Result<()> {
    let path = path()?;
    let dir = path.parent().context("token file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = path.with_extension("json.tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    // A file left by an older version may have a wider mode.
    out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    out.write_all(&serde_json::to_vec_pretty(file)?)?;
    out.sync_all()?;
    std::fs::rename(&temporary, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The token saved for `server`, if any.
pub fn get(server: &str) -> Result<Option<Saved>> {
    Ok(load()?.servers.get(server).cloned())
}

pub fn save(server: &str, saved: Saved) -> Result<()> {
    let mut file = load()?;
    file.servers.insert(server.to_owned(), saved);
    store(&file)
}

/// Forgets the token for `server`; true when there was one.
pub fn remove(server: &str) -> Result<bool> {
    let mut file = load()?;
    let removed = file.servers.remove(server).is_some();
    if removed {
        store(&file)?;
    }
    Ok(removed)
}
