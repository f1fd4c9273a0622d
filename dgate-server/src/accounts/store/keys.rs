//! SSH public keys of accounts: one account per key (on a node of a
//! cluster, claimed in the shared store first).

use std::time::SystemTime;

use rusqlite::OptionalExtension;

use super::super::replica::KeyRecord;
use super::super::shared::SharedAccounts;
use super::{AccountError, AccountStore, MAX_PUBLIC_KEYS, PublicKeyInfo, User, from_unix, unix};

impl AccountStore {
    /// Registers an OpenSSH public key line (`ssh-ed25519 AAAA... comment`)
    /// for `username`.
    pub fn add_public_key(
        &self,
        username: &str,
        line: &str,
    ) -> Result<PublicKeyInfo, AccountError> {
        let key = russh::keys::PublicKey::from_openssh(line.trim()).map_err(|e| {
            AccountError::Invalid {
                what: "public key",
                why: format!("not an OpenSSH public key line ({e})"),
            }
        })?;
        let comment: String = AsRef::<str>::as_ref(key.comment())
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        let mut bare = key.clone();
        bare.set_comment("");
        let text = bare.to_openssh().map_err(|e| AccountError::Invalid {
            what: "public key",
            why: e.to_string(),
        })?;
        let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
        let user = self.user(username)?;
        if let Some(shared) = &self.shared {
            let info = PublicKeyInfo {
                fingerprint,
                key: text.trim().to_owned(),
                comment,
                added_at: SystemTime::now(),
            };
            self.add_shared_key(shared, &user, &info)?;
            return Ok(info);
        }
        let db = self.db();
        let count: usize = db.query_row(
            "SELECT COUNT(*) FROM public_keys WHERE user_id = ?1",
            [user.id],
            |r| r.get(0),
        )?;
        if count >= MAX_PUBLIC_KEYS {
            return Err(AccountError::TooManyKeys);
        }
        let added_at = SystemTime::now();
        let inserted = db.execute(
            "INSERT OR IGNORE INTO public_keys (fingerprint, user_id, key, comment, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![fingerprint, user.id, text.trim(), comment, unix(added_at)],
        )?;
        if inserted == 0 {
            return Err(AccountError::KeyTaken);
        }
        Ok(PublicKeyInfo {
            fingerprint,
            key: text.trim().to_owned(),
            comment,
            added_at,
        })
    }

    /// [`add_public_key`](Self::add_public_key) on a node of a cluster:
    /// the key is claimed for the account first, so no two accounts hold it.
    fn add_shared_key(
        &self,
        shared: &SharedAccounts,
        user: &User,
        info: &PublicKeyInfo,
    ) -> Result<(), AccountError> {
        if self.public_keys(&user.username)?.len() >= MAX_PUBLIC_KEYS {
            return Err(AccountError::TooManyKeys);
        }
        if !shared.claim_key(self, &info.fingerprint, user.id)? {
            return Err(AccountError::KeyTaken);
        }
        let added = shared.update(self, &user.username, |r| {
            if r.keys.iter().any(|k| k.fingerprint == info.fingerprint) {
                return Err(AccountError::KeyTaken);
            }
            if r.keys.len() >= MAX_PUBLIC_KEYS {
                return Err(AccountError::TooManyKeys);
            }
            r.keys.push(KeyRecord {
                fingerprint: info.fingerprint.clone(),
                key: info.key.clone(),
                comment: info.comment.clone(),
                added_at: unix(info.added_at),
            });
            Ok(())
        });
        if added.is_err() {
            shared.release_key(&info.fingerprint, user.id);
        }
        added.map(|_| ())
    }

    pub fn public_keys(&self, username: &str) -> Result<Vec<PublicKeyInfo>, AccountError> {
        let user = self.user(username)?;
        let db = self.db();
        let mut statement = db.prepare(
            "SELECT fingerprint, key, comment, added_at FROM public_keys
             WHERE user_id = ?1 ORDER BY added_at, fingerprint",
        )?;
        let keys = statement
            .query_map([user.id], |r| {
                Ok(PublicKeyInfo {
                    fingerprint: r.get(0)?,
                    key: r.get(1)?,
                    comment: r.get(2)?,
                    added_at: from_unix(r.get(3)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(keys)
    }

    /// Removes one of `username`'s keys; false when it has no such key.
    pub fn remove_public_key(
        &self,
        username: &str,
        fingerprint: &str,
    ) -> Result<bool, AccountError> {
        let user = self.user(username)?;
        if let Some(shared) = &self.shared {
            let mut removed = false;
            shared.update(self, &user.username, |r| {
                let before = r.keys.len();
                r.keys.retain(|k| k.fingerprint != fingerprint);
                removed = r.keys.len() < before;
                Ok(())
            })?;
            if removed {
                shared.release_key(fingerprint, user.id);
            }
            return Ok(removed);
        }
        let removed = self.db().execute(
            "DELETE FROM public_keys WHERE user_id = ?1 AND fingerprint = ?2",
            rusqlite::params![user.id, fingerprint],
        )?;
        Ok(removed > 0)
    }

    /// The account `username`, when `key` is registered to it (and it is not banned).
    pub fn user_with_key(
        &self,
        username: &str,
        key: &russh::keys::PublicKey,
    ) -> Result<User, AccountError> {
        let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
        let user_id: Option<i64> = self
            .db()
            .query_row(
                "SELECT users.id FROM public_keys JOIN users ON users.id = public_keys.user_id
                 WHERE public_keys.fingerprint = ?1 AND users.username = ?2",
                rusqlite::params![fingerprint, username],
                |r| r.get(0),
            )
            .optional()?;
        let user = self.user_by_id(user_id.ok_or(AccountError::BadCredentials)?)?;
        if user.is_banned {
            return Err(AccountError::Banned(user.username));
        }
        Ok(user)
    }
}
