//! A player's say over who watches their games and who speaks in their
//! chat, as DCSS WebTiles gives it: `/mute NAME`, `/unmute NAME`,
//! `/kick NAME [MINUTES]`, `/block anon`, `/block all`, `/unblock`.
//!
//! The rules are the player's, not one game's: they hold for every game of
//! theirs, now and later, kept in `<data_dir>/audience/<player>.json`
//! (written atomically). One [`Audience`] per player is shared by all their
//! sessions ([`Audiences`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::accounts::User;

/// How long a `/kick` keeps someone out when it names no time.
pub const DEFAULT_KICK: Duration = Duration::from_secs(10 * 60);
/// The longest kick: a day.
pub const MAX_KICK_MINUTES: u64 = 24 * 60;

/// Who may watch at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    #[default]
    None,
    /// Only logged-in spectators.
    Anon,
    /// Nobody: the game is private.
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Rules {
    /// Lowercased names whose chat lines reach nobody.
    muted: BTreeSet<String>,
    /// Lowercased names kept out until a Unix time (seconds).
    kicked: BTreeMap<String, u64>,
    block: Block,
}

/// A command the player (or an admin) gave in the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Mute(String),
    Unmute(String),
    Kick { name: String, minutes: u64 },
    Block(Block),
    Unblock,
    Help,
}

pub const HELP: &str =
    "/mute NAME, /unmute NAME, /kick NAME [MINUTES], /block anon, /block all, /unblock";

impl Command {
    /// The command in `line` (which starts with `/`), or why it is none.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("").to_lowercase();
        let name = |word: Option<&str>| -> Result<String, String> {
            let name = word.ok_or_else(|| format!("{verb} needs a name"))?;
            crate::accounts::check_username(name)
                .map_err(|why| format!("{verb} {name:?}: {why}"))?;
            Ok(name.to_owned())
        };
        let command = match verb.as_str() {
            "/mute" => Self::Mute(name(words.next())?),
            "/unmute" => Self::Unmute(name(words.next())?),
            "/kick" => {
                let name = name(words.next())?;
                let minutes = match words.next() {
                    None => DEFAULT_KICK.as_secs() / 60,
                    Some(m) => match m.parse::<u64>() {
                        Ok(m) if (1..=MAX_KICK_MINUTES).contains(&m) => m,
                        _ => {
                            return Err(format!(
                                "/kick {name} {m}: minutes are 1 to {MAX_KICK_MINUTES}"
                            ));
                        }
                    },
                };
                Self::Kick { name, minutes }
            }
            "/block" => match words.next().map(str::to_lowercase).as_deref() {
                Some("anon") => Self::Block(Block::Anon),
                Some("all") => Self::Block(Block::All),
                _ => return Err("/block anon or /block all".to_owned()),
            },
            "/unblock" => Self::Unblock,
            "/help" => Self::Help,
            _ => return Err(format!("no command {verb}; the commands are {HELP}")),
        };
        if words.next().is_some() {
            return Err(format!("too many words for {verb}"));
        }
        Ok(command)
    }
}

/// One player's rules, shared by their sessions.
#[derive(Debug)]
pub struct Audience {
    /// The player, lowercased: never kept from their own games.
    owner: String,
    path: PathBuf,
    rules: Mutex<Rules>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Audience {
    fn load(owner: String, path: PathBuf) -> Self {
        let rules = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %path.display(), error = %e, "an audience file is damaged; starting afresh");
                Rules::default()
            }),
            Err(_) => Rules::default(),
        };
        Self {
            owner,
            path,
            rules: Mutex::new(rules),
        }
    }

    /// The rules of a game another node runs, as that node lists it: only
    /// `private` is known here, and nothing is kept.
    pub fn remote(owner: &str, private: bool) -> Self {
        Self {
            owner: owner.to_lowercase(),
            path: PathBuf::new(),
            rules: Mutex::new(Rules {
                block: if private { Block::All } else { Block::None },
                ..Rules::default()
            }),
        }
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why `who` (anonymous when `None`) may not watch, if they may not.
    /// The player and admins always may (to undo a `/block all` among
    /// other things).
    pub fn refuses(&self, who: Option<&User>) -> Option<String> {
        if who.is_some_and(|u| u.is_admin || u.username.eq_ignore_ascii_case(&self.owner)) {
            return None;
        }
        let rules = self.rules();
        match (rules.block, who) {
            (Block::All, _) => Some("the player does not allow watching".to_owned()),
            (Block::Anon, None) => Some("the player allows only logged-in spectators".to_owned()),
            (_, Some(user)) => {
                let until = *rules.kicked.get(&user.username.to_lowercase())?;
                let left = until.saturating_sub(now());
                (left > 0).then(|| {
                    format!(
                        "the player sent you away; you may watch again in {} min",
                        left.div_ceil(60)
                    )
                })
            }
            (_, None) => None,
        }
    }

    pub fn is_muted(&self, name: &str) -> bool {
        self.rules().muted.contains(&name.to_lowercase())
    }

    pub fn block(&self) -> Block {
        self.rules().block
    }

    /// Applies `command` and keeps the rules; what to tell the player.
    pub fn apply(&self, command: &Command) -> String {
        let mut rules = self.rules();
        let answer = match command {
            Command::Mute(name) => {
                rules.muted.insert(name.to_lowercase());
                format!("{name} is muted: their lines reach nobody")
            }
            Command::Unmute(name) => {
                if rules.muted.remove(&name.to_lowercase()) {
                    format!("{name} may speak again")
                } else {
                    format!("{name} was not muted")
                }
            }
            Command::Kick { name, minutes } => {
                rules
                    .kicked
                    .insert(name.to_lowercase(), now() + minutes * 60);
                format!("{name} is sent away for {minutes} min")
            }
            Command::Block(Block::Anon) => {
                rules.block = Block::Anon;
                "only logged-in spectators may watch now".to_owned()
            }
            Command::Block(_) => {
                rules.block = Block::All;
                "nobody may watch now; your games are private".to_owned()
            }
            Command::Unblock => {
                rules.block = Block::None;
                "anyone may watch again".to_owned()
            }
            Command::Help => return format!("commands: {HELP}"),
        };
        let now = now();
        rules.kicked.retain(|_, until| *until > now);
        if let Err(e) = save(&self.path, &rules) {
            warn!(path = %self.path.display(), error = %e, "cannot keep the audience rules");
        }
        answer
    }
}

fn save(path: &Path, rules: &Rules) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(".audience-")
        .tempfile_in(dir)?;
    file.write_all(&serde_json::to_vec_pretty(rules).map_err(std::io::Error::other)?)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Every player's [`Audience`], loaded on first use.
#[derive(Debug)]
pub struct Audiences {
    dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Audience>>>,
}

impl Audiences {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("audience"),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// `player`'s rules (a checked account name).
    pub fn of(&self, player: &str) -> Arc<Audience> {
        let key = player.to_lowercase();
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(loaded.entry(key.clone()).or_insert_with(|| {
            let path = self.dir.join(format!("{key}.json"));
            Arc::new(Audience::load(key.clone(), path))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            id: 7,
            username: name.into(),
            email: None,
            created_at: SystemTime::now(),
            last_login: None,
            is_admin: false,
            is_banned: false,
            generation: 0,
        }
    }

    #[test]
    fn commands_parse_or_say_why_not() {
        assert_eq!(Command::parse("/mute Bob"), Ok(Command::Mute("Bob".into())));
        assert_eq!(
            Command::parse("/kick bob"),
            Ok(Command::Kick {
                name: "bob".into(),
                minutes: 10
            })
        );
        assert_eq!(
            Command::parse("/KICK bob 30"),
            Ok(Command::Kick {
                name: "bob".into(),
                minutes: 30
            })
        );
        assert_eq!(
            Command::parse("/block anon"),
            Ok(Command::Block(Block::Anon))
        );
        for (bad, why) in [
            ("/mute", "needs a name"),
            ("/kick bob 0", "minutes are 1 to 1440"),
            ("/kick bob x", "minutes are 1 to 1440"),
            ("/block some", "/block anon or /block all"),
            ("/dance", "no command /dance"),
            ("/mute ab cd", "too many words"),
            ("/mute \u{1b}[2J", "/mute"),
        ] {
            let err = Command::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn rules_hold_for_later_games_and_are_kept_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audiences = Audiences::new(dir.path());
        let alice = audiences.of("Alice");
        alice.apply(&Command::Mute("Bob".into()));
        alice.apply(&Command::Kick {
            name: "carol".into(),
            minutes: 5,
        });
        alice.apply(&Command::Block(Block::Anon));
        assert!(alice.is_muted("bob"));
        assert!(
            alice
                .refuses(Some(&user("Carol")))
                .expect("kicked")
                .contains("5 min")
        );
        assert!(alice.refuses(None).is_some());
        assert_eq!(alice.refuses(Some(&user("dave"))), None);
        assert!(
            Arc::ptr_eq(&alice, &audiences.of("alice")),
            "one per player"
        );

        // A restarted server reads them back.
        let again = Audiences::new(dir.path()).of("alice");
        assert!(again.is_muted("BOB"));
        assert_eq!(again.block(), Block::Anon);
        again.apply(&Command::Unblock);
        again.apply(&Command::Block(Block::All));
        assert!(again.refuses(Some(&user("dave"))).is_some());
        // The player and admins may always watch (and undo it).
        assert_eq!(again.refuses(Some(&user("Alice"))), None);
        let admin = User {
            is_admin: true,
            ..user("root_op")
        };
        assert_eq!(again.refuses(Some(&admin)), None);
    }
}
