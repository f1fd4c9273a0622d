//! Accounts carried over from elsewhere: dgamelaunch's (with their crypt(3)
//! hashes) and, into a cluster, a single server's.

use std::time::SystemTime;

use rusqlite::params;

use super::super::replica::UserRecord;
use super::{
    AccountError, AccountStore, LegacyAccount, check_email, check_username, invalid_username, unix,
};

/// What `dgate-server import node` did.
#[derive(Debug, Default)]
pub struct NodeImport {
    pub added: Vec<String>,
    /// Names the cluster has already (left as they are).
    pub taken: Vec<String>,
    /// Accounts one of whose keys another account holds (left out).
    pub keys_taken: Vec<String>,
    /// Names a game would misread, not carried (rename them first).
    pub invalid: Vec<String>,
}

impl std::fmt::Display for NodeImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "added {} account(s) to the cluster: {}",
            self.added.len(),
            self.added.join(", ")
        )?;
        if !self.taken.is_empty() {
            writeln!(
                f,
                "left {} the cluster has already: {}",
                self.taken.len(),
                self.taken.join(", ")
            )?;
        }
        if !self.keys_taken.is_empty() {
            writeln!(
                f,
                "left out {} SSH key(s) another account holds (of {})",
                self.keys_taken.len(),
                self.keys_taken.join(", ")
            )?;
        }
        for why in &self.invalid {
            writeln!(f, "not carried: {why} (rename it with `user rename` first)")?;
        }
        writeln!(f, "tokens are not carried: everyone logs in once more")
    }
}

impl AccountStore {
    /// Adds accounts that log in with the password hash they had on another
    /// server until their first login replaces it (see
    /// [`check_credentials`](Self::check_credentials)), in one transaction.
    /// An account whose name is taken (ignoring case) is left as it is: the
    /// answer is, for each, whether it was added. The hashes are to be of a
    /// form `dgamelaunch::hash_kind` accepts.
    pub fn import_legacy(&self, accounts: &[LegacyAccount]) -> Result<Vec<bool>, AccountError> {
        for account in accounts {
            check_username(&account.username).map_err(invalid_username)?;
            check_email(account.email.as_deref())?;
        }
        if let Some(shared) = &self.shared {
            let now = unix(SystemTime::now());
            return accounts
                .iter()
                .map(|a| {
                    let record = UserRecord {
                        id: shared.allocate_id()?,
                        username: a.username.clone(),
                        password_hash: String::new(),
                        legacy_hash: Some(a.legacy_hash.clone()),
                        email: a.email.clone(),
                        created_at: now,
                        last_login: None,
                        is_admin: a.is_admin,
                        is_banned: a.is_banned,
                        generation: 0,
                        keys: Vec::new(),
                    };
                    shared.create(self, &record)
                })
                .collect();
        }
        let mut db = self.db();
        // IMMEDIATE: the write lock first, so a running server's writes wait
        // their turn instead of failing this half way.
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = unix(SystemTime::now());
        let mut added = Vec::with_capacity(accounts.len());
        for a in accounts {
            let inserted = tx.execute(
                "INSERT INTO users (username, password_hash, legacy_hash, email, created_at, is_admin, is_banned)
                 VALUES (?1, '', ?2, ?3, ?4, ?5, ?6) ON CONFLICT (username) DO NOTHING",
                params![a.username, a.legacy_hash, a.email, now, a.is_admin, a.is_banned],
            )?;
            added.push(inserted == 1);
        }
        tx.commit()?;
        Ok(added)
    }

    /// `dgate-server import node`: a single server's accounts (read with
    /// [`replica::all_records`](super::replica::all_records)) into the
    /// cluster's store, with new ids. A name the cluster has is left alone,
    /// and so is a key another account holds.
    pub fn import_records(&self, records: Vec<UserRecord>) -> Result<NodeImport, AccountError> {
        let Some(shared) = &self.shared else {
            return Err(AccountError::Io(
                "not a node of a cluster: there is no shared store to import into".into(),
            ));
        };
        let mut report = NodeImport::default();
        for mut record in records {
            if let Err(why) = check_username(&record.username) {
                report.invalid.push(why);
                continue;
            }
            // Taken already (as when run again): no id, no key claimed.
            if self.user(&record.username).is_ok() {
                report.taken.push(record.username);
                continue;
            }
            record.id = shared.allocate_id()?;
            let mut claimed = Vec::new();
            for key in std::mem::take(&mut record.keys) {
                if shared.claim_key(self, &key.fingerprint, record.id)? {
                    claimed.push(key.fingerprint.clone());
                    record.keys.push(key);
                } else {
                    report.keys_taken.push(record.username.clone());
                }
            }
            if shared.create(self, &record)? {
                report.added.push(record.username);
            } else {
                for fingerprint in &claimed {
                    shared.release_key(fingerprint, record.id);
                }
                report.taken.push(record.username);
            }
        }
        Ok(report)
    }
}
