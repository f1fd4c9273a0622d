//! Accounts shared by the nodes of a cluster (docs/CLUSTER.md, "Shared
//! accounts"), kept in two NATS JetStream key-value buckets:
//!
//! - `dgate_accounts`: `user.<name in lower case>`, each account's record
//!   (its hashes, flags, generation and SSH keys); `key.<fingerprint, hex>`,
//!   which account a public key belongs to; `secret.token_key`, the key
//!   that signs tokens; `meta.next_id`, the next account id. A name is taken with create-if-absent and a record
//!   changed with compare-and-swap on its revision, so two nodes can never
//!   both register one name or lose each other's change.
//! - `dgate_revoked`: tokens logged out before they expire
//!   (`token.<SHA-256>`), kept as long as a token lives.
//!
//! Every node follows both buckets into its own SQLite copy
//! ([`replica`]) and answers every check from it: a password, a token, an
//! SSH key. A token is signed (HMAC-SHA256 with the shared key) and names
//! the account, its credential generation and its expiry, so any node
//! checks one without asking anybody; a password change or a ban bumps
//! the generation and with it ends every token and live session on every
//! node. A node cut off from the majority of the NATS servers goes on
//! logging people in from its copy; what writes (registering, a new
//! password, a ban) waits for the store and says so when it cannot.
//!
//! Writes block (the store's callers run on blocking threads) on the
//! runtime the node started them from.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_nats::jetstream::{kv, stream};
use futures_util::{FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::replica::{self, Change, UserRecord};
use super::store::{AccountError, AccountStore, User, hex, random_bytes, unix};
use super::tokens;

pub const ACCOUNTS_BUCKET: &str = "dgate_accounts";
pub const REVOKED_BUCKET: &str = "dgate_revoked";
const TOKEN_KEY: &str = "secret.token_key";
/// The next account id to hand out (ids are 32-bit in the games protocol).
const NEXT_ID: &str = "meta.next_id";
/// How long a change waits for the store before it is refused.
const WRITE_WAIT: Duration = Duration::from_secs(5);
/// Attempts at a compare-and-swap that others' changes keep beating.
const CAS_ATTEMPTS: usize = 8;

/// The key of `username`'s record (names are unique ignoring case).
fn user_key(username: &str) -> String {
    format!("user.{}", username.to_ascii_lowercase())
}

fn key_index(fingerprint: &str) -> String {
    format!("key.{}", hex(fingerprint.as_bytes()))
}

fn revoked_key(token: &str) -> String {
    format!("token.{}", hex(&Sha256::digest(token.as_bytes())))
}

/// A change the store could not take.
fn unavailable(what: impl std::fmt::Display) -> AccountError {
    AccountError::Unavailable(format!(
        "the cluster's accounts cannot be changed now: {what}"
    ))
}

struct Buckets {
    accounts: kv::Store,
    revoked: kv::Store,
}

/// This node's side of the shared accounts.
pub struct SharedAccounts {
    jetstream: async_nats::jetstream::Context,
    runtime: tokio::runtime::Handle,
    replicas: usize,
    token_lifetime: Duration,
    buckets: OnceLock<Buckets>,
    /// True once the copy holds everything the store had when this node
    /// started following it.
    synced: watch::Sender<bool>,
}

impl std::fmt::Debug for SharedAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedAccounts")
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

impl SharedAccounts {
    /// Accounts on `client`'s JetStream; to be called on the runtime that
    /// will carry the writes.
    pub fn new(client: async_nats::Client, replicas: usize, token_lifetime: Duration) -> Arc<Self> {
        let mut jetstream = async_nats::jetstream::new(client);
        // A JetStream still electing its leaders leaves requests
        // unanswered: asking again soon beats waiting long.
        jetstream.set_timeout(Duration::from_secs(2));
        Arc::new(Self {
            jetstream,
            runtime: tokio::runtime::Handle::current(),
            replicas,
            token_lifetime,
            buckets: OnceLock::new(),
            synced: watch::channel(false).0,
        })
    }

    /// Follows the store into `store`'s copy until `stop`, reconnecting
    /// as long as it takes.
    pub fn follow(self: &Arc<Self>, store: Arc<AccountStore>, stop: CancellationToken) {
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let followed = tokio::select! {
                    followed = shared.follow_once(&store) => followed,
                    () = stop.cancelled() => return,
                };
                match followed {
                    Err(e) if e.downcast_ref::<NoJetStream>().is_some() => {
                        warn!("shared accounts: {e:#}");
                        backoff = Duration::from_secs(10);
                    }
                    Err(e) => warn!("shared accounts: {e:#}; trying again"),
                    Ok(()) => {}
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// Waits (at most `wait`) until the copy caught up with the store;
    /// false when it did not (the node then answers from what it has).
    pub async fn synced(&self, wait: Duration) -> bool {
        let mut synced = self.synced.subscribe();
        tokio::time::timeout(wait, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// At a node's start: fails when NATS answers that it has no
    /// JetStream (a setup to fix); a store out of reach is waited for in
    /// the background.
    pub async fn check(&self) -> anyhow::Result<()> {
        match tokio::time::timeout(Duration::from_secs(5), self.bind()).await {
            Ok(Err(e)) if e.downcast_ref::<NoJetStream>().is_some() => Err(e),
            _ => Ok(()),
        }
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Binds both buckets, creating them when this is the first node.
    async fn bind(&self) -> anyhow::Result<&Buckets> {
        if let Some(buckets) = self.buckets.get() {
            return Ok(buckets);
        }
        let accounts = self.bucket(ACCOUNTS_BUCKET, Duration::ZERO).await?;
        let revoked = self.bucket(REVOKED_BUCKET, self.token_lifetime).await?;
        Ok(self.buckets.get_or_init(|| Buckets { accounts, revoked }))
    }

    async fn bucket(&self, name: &str, max_age: Duration) -> anyhow::Result<kv::Store> {
        if let Ok(store) = self.jetstream.get_key_value(name).await {
            return Ok(store);
        }
        // The bucket's stream as `create_key_value` would make it, which
        // cannot be called here: it first reads the account's JetStream
        // info, which a 2.9 server answers without fields this client needs.
        let created = self
            .jetstream
            .create_stream(stream::Config {
                name: format!("KV_{name}"),
                description: Some("dgate's shared accounts (docs/CLUSTER.md)".into()),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: 1,
                max_age,
                max_message_size: 64 * 1024,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await;
        match (created, self.jetstream.get_key_value(name).await) {
            (Ok(_), Ok(store)) => {
                info!(
                    bucket = name,
                    replicas = self.replicas,
                    "shared accounts: created"
                );
                Ok(store)
            }
            // Another node made it meanwhile.
            (Err(_), Ok(store)) => Ok(store),
            (Err(e), Err(_)) if no_jetstream(&e) => Err(NoJetStream.into()),
            (Err(e), Err(_)) => Err(e).with_context(|| {
                format!(
                    "creating the bucket {name} with {} replicas (the NATS cluster needs \
                     that many JetStream servers: see cluster.account_replicas)",
                    self.replicas
                )
            }),
            (Ok(_), Err(e)) => Err(e).with_context(|| format!("binding the bucket {name}")),
        }
    }

    /// One pass: binds, then applies everything the buckets hold and every
    /// change after, until the watch fails.
    async fn follow_once(&self, store: &Arc<AccountStore>) -> anyhow::Result<()> {
        let buckets = self.bind().await?;
        let key = hex(&random_bytes::<32>()?);
        match buckets.accounts.create(TOKEN_KEY, key.into()).await {
            Ok(_) => info!("shared accounts: made the key that signs tokens"),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).context("the key that signs tokens"),
        }
        let users = buckets.accounts.watch_with_history(">").await?;
        let revoked = buckets.revoked.watch_with_history(">").await?;
        let mut entries = futures_util::stream::select(users, revoked);
        // The accounts seen while catching up; the copy's others are gone.
        // (The bucket holds the token key at least, so its history always
        // ends with an entry whose delta is 0.)
        let mut seen: Option<HashSet<i64>> = Some(HashSet::new());
        loop {
            let mut batch = Vec::new();
            let mut last_of_history = false;
            let mut next = entries.next().await;
            // What is ready goes in one transaction (one write to disk).
            loop {
                let entry = match next {
                    None => anyhow::bail!("the store's watch ended"),
                    Some(entry) => entry.context("watching the store")?,
                };
                let catching_up = seen.is_some() && entry.bucket == ACCOUNTS_BUCKET;
                if let Some(change) = change_of(&entry) {
                    if let (Some(seen), Change::User(record, _)) = (&mut seen, &change) {
                        seen.insert(record.id);
                    }
                    batch.push(change);
                }
                if catching_up && entry.delta == 0 {
                    last_of_history = true;
                    break;
                }
                if batch.len() >= 256 {
                    break;
                }
                match entries.next().now_or_never() {
                    Some(ready) => next = ready,
                    None => break,
                }
            }
            let copy = Arc::clone(store);
            tokio::task::spawn_blocking(move || replica::apply(&copy, &batch)).await??;
            if last_of_history {
                self.caught_up(store, &mut seen).await?;
            }
        }
    }

    async fn caught_up(
        &self,
        store: &Arc<AccountStore>,
        seen: &mut Option<HashSet<i64>>,
    ) -> anyhow::Result<()> {
        let Some(seen) = seen.take() else {
            return Ok(());
        };
        let copy = Arc::clone(store);
        let removed =
            tokio::task::spawn_blocking(move || replica::keep_only(&copy, &seen)).await??;
        info!(removed, "shared accounts: this node's copy is up to date");
        self.synced.send_replace(true);
        Ok(())
    }

    /// Runs a change to the store, waiting at most [`WRITE_WAIT`].
    fn block<T>(
        &self,
        work: impl Future<Output = Result<T, AccountError>>,
    ) -> Result<T, AccountError> {
        // Not connected to NATS at all: said at once, not after the wait
        // (a password check waiting here holds a place in the queue).
        if self.jetstream.client().connection_state() != async_nats::connection::State::Connected {
            return Err(unavailable("this node is not connected to NATS"));
        }
        self.runtime.block_on(async {
            tokio::time::timeout(WRITE_WAIT, work)
                .await
                .unwrap_or_else(|_| Err(unavailable("the store did not answer in 5 s")))
        })
    }

    /// The buckets, bound now if the background binding has not yet.
    fn buckets(&self) -> Result<&Buckets, AccountError> {
        if let Some(buckets) = self.buckets.get() {
            return Ok(buckets);
        }
        self.block(async {
            self.bind().await.map_err(|e| {
                unavailable(format!("this node has not reached the store yet ({e:#})"))
            })
        })
    }

    /// A new account id, never handed out before (a counter changed by
    /// compare-and-swap).
    pub(super) fn allocate_id(&self) -> Result<i64, AccountError> {
        let buckets = self.buckets()?;
        self.block(async {
            for _ in 0..CAS_ATTEMPTS * 4 {
                let entry = buckets
                    .accounts
                    .entry(NEXT_ID)
                    .await
                    .map_err(unavailable)?
                    .filter(|e| e.operation == kv::Operation::Put);
                let Some(entry) = entry else {
                    match buckets.accounts.create(NEXT_ID, "2".into()).await {
                        Ok(_) => return Ok(1),
                        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(unavailable(e)),
                    }
                };
                let next: i64 = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .filter(|&n| (1..i64::from(i32::MAX)).contains(&n))
                    .ok_or_else(|| unavailable("the next account id is damaged or used up"))?;
                match buckets
                    .accounts
                    .update(NEXT_ID, (next + 1).to_string().into(), entry.revision)
                    .await
                {
                    Ok(_) => return Ok(next),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Err(unavailable("other registrations kept coming first"))
        })
    }

    /// Adds `record` unless its name is taken (ignoring case); true when
    /// it was added.
    pub(super) fn create(
        &self,
        store: &AccountStore,
        record: &UserRecord,
    ) -> Result<bool, AccountError> {
        let buckets = self.buckets()?;
        let created = self.block(async {
            match buckets
                .accounts
                .create(user_key(&record.username), record.encode())
                .await
            {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(unavailable(e)),
            }
        })?;
        match created {
            Some(revision) => {
                replica::apply(store, &[Change::User(record.clone(), revision)])?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Changes `username`'s record with `change` (compare-and-swap, again
    /// when another change came first) and returns it as stored.
    pub(super) fn update(
        &self,
        store: &AccountStore,
        username: &str,
        change: impl FnMut(&mut UserRecord) -> Result<(), AccountError>,
    ) -> Result<UserRecord, AccountError> {
        let buckets = self.buckets()?;
        let (record, revision) = self.block(swap(&buckets.accounts, username, change))?;
        replica::apply(store, &[Change::User(record.clone(), revision)])?;
        Ok(record)
    }

    /// Records a login's time, in the background: nothing waits for it and
    /// a node cut off does without.
    pub(super) fn touch(&self, username: &str) {
        let Some(buckets) = self.buckets.get() else {
            return;
        };
        let (accounts, username) = (buckets.accounts.clone(), username.to_owned());
        self.runtime.spawn(async move {
            let now = unix(SystemTime::now());
            let touched = tokio::time::timeout(
                WRITE_WAIT,
                swap(&accounts, &username, |r| {
                    r.last_login = Some(now);
                    Ok(())
                }),
            )
            .await;
            if !matches!(touched, Ok(Ok(_))) {
                tracing::debug!(%username, "shared accounts: the login time was not recorded");
            }
        });
    }

    /// Renames an account: the new name is taken first, then the old one
    /// freed (unless the account changed meanwhile: then the new name is
    /// given back and nothing changed).
    pub(super) fn rename(
        &self,
        store: &AccountStore,
        username: &str,
        new_name: &str,
    ) -> Result<(), AccountError> {
        let buckets = self.buckets()?;
        let (old, new) = (user_key(username), user_key(new_name));
        if old == new {
            self.update(store, username, |r| {
                r.username = new_name.to_owned();
                Ok(())
            })?;
            return Ok(());
        }
        let (record, revision) = self.block(async {
            let (mut record, revision) = read(&buckets.accounts, username).await?;
            record.username = new_name.to_owned();
            let created = match buckets.accounts.create(&new, record.encode()).await {
                Ok(created) => created,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    return Err(AccountError::UsernameTaken(new_name.to_owned()));
                }
                Err(e) => return Err(unavailable(e)),
            };
            if let Err(e) = buckets
                .accounts
                .delete_expect_revision(&old, Some(revision))
                .await
            {
                let _ = buckets
                    .accounts
                    .delete_expect_revision(&new, Some(created))
                    .await;
                // The nodes' copies saw the account under the new name and
                // then that name freed: the old record, written again at a
                // later revision, brings it back everywhere.
                let _ = swap(&buckets.accounts, username, |_| Ok(())).await;
                return Err(unavailable(format!(
                    "the account changed meanwhile, nothing was renamed ({e})"
                )));
            }
            Ok((record, created))
        })?;
        replica::apply(store, &[Change::User(record, revision)])
    }

    /// Claims `fingerprint` for account `id`: false when another account
    /// holds it. A claim whose account does not list the key (a change
    /// that failed half way) is taken over.
    pub(super) fn claim_key(
        &self,
        store: &AccountStore,
        fingerprint: &str,
        id: i64,
    ) -> Result<bool, AccountError> {
        let buckets = self.buckets()?;
        let index = key_index(fingerprint);
        let owner = id.to_string();
        let claimed = self.block(async {
            match buckets.accounts.create(&index, owner.clone().into()).await {
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(unavailable(e)),
            }
            let entry = buckets.accounts.entry(&index).await.map_err(unavailable)?;
            Ok(entry.map(|e| (e.revision, e.value)))
        })?;
        let Some((revision, holder)) = claimed else {
            return Ok(true);
        };
        if holder.as_ref() == owner.as_bytes() {
            return Ok(true);
        }
        // Another account's claim: it stands if that account's record, as
        // the store has it now, lists the key.
        let holder = std::str::from_utf8(&holder)
            .ok()
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| store.user_by_id(id).ok());
        let stale = match holder {
            Some(holder) => match self.block(read(&buckets.accounts, &holder.username)) {
                Ok((record, _)) => !record.keys.iter().any(|k| k.fingerprint == fingerprint),
                Err(AccountError::NoSuchUser(_)) => true,
                Err(e) => return Err(e),
            },
            None => true,
        };
        if !stale {
            return Ok(false);
        }
        self.block(async {
            buckets
                .accounts
                .update(&index, owner.clone().into(), revision)
                .await
                .map(|_| true)
                .or(Ok(false))
        })
    }

    /// Gives account `id`'s claim of a key up (best effort; a claim that
    /// another account holds by now stays).
    pub(super) fn release_key(&self, fingerprint: &str, id: i64) {
        let Ok(buckets) = self.buckets() else {
            return;
        };
        let index = key_index(fingerprint);
        let _ = self.block(async {
            let entry = buckets.accounts.entry(&index).await.map_err(unavailable)?;
            if let Some(entry) = entry.filter(|e| e.value.as_ref() == id.to_string().as_bytes()) {
                buckets
                    .accounts
                    .delete_expect_revision(&index, Some(entry.revision))
                    .await
                    .map_err(unavailable)?;
            }
            Ok(())
        });
    }

    /// Replaces a legacy hash that a login's password matched with `hash`
    /// (argon2id), in the background: the login does not wait for it, and
    /// a node cut off leaves it to a later login.
    pub(super) fn upgrade_legacy(&self, username: &str, legacy: &str, hash: String) {
        let Some(buckets) = self.buckets.get() else {
            return;
        };
        let (accounts, username, legacy) = (
            buckets.accounts.clone(),
            username.to_owned(),
            legacy.to_owned(),
        );
        self.runtime.spawn(async move {
            let upgraded = tokio::time::timeout(
                WRITE_WAIT,
                swap(&accounts, &username, |r| {
                    // A login that upgraded it meanwhile, or a new password, wins.
                    if r.password_hash.is_empty() && r.legacy_hash.as_deref() == Some(&legacy) {
                        r.password_hash = hash.clone();
                        r.legacy_hash = None;
                    }
                    Ok(())
                }),
            )
            .await;
            if !matches!(upgraded, Ok(Ok(_))) {
                warn!(%username, "cannot replace a legacy password hash now; a later login will");
            }
        });
    }

    /// A token for `user`, valid on every node until it expires, the
    /// account's generation changes or it is revoked.
    pub(super) fn issue_token(
        &self,
        store: &AccountStore,
        user: &User,
    ) -> Result<(String, SystemTime), AccountError> {
        let expires_at = SystemTime::now() + self.token_lifetime;
        Ok((tokens::sign(store, user, expires_at)?, expires_at))
    }

    /// Revokes a token: at once on this node, and on the others once the
    /// store has it (an error says when it could not be told).
    pub(super) fn revoke(&self, store: &AccountStore, token: &str) -> Result<(), AccountError> {
        tokens::verify(store, token)?;
        let hash = hex(&Sha256::digest(token.as_bytes()));
        let until = unix(SystemTime::now() + self.token_lifetime);
        replica::apply(store, &[Change::Revoked(hash, until)])?;
        let buckets = self.buckets()?;
        self.block(async {
            buckets
                .revoked
                .put(revoked_key(token), until.to_string().into())
                .await
                .map(|_| ())
                .map_err(|e| {
                    unavailable(format!(
                        "the token is revoked on this node only; other nodes accept it \
                         until it expires or the password changes ({e})"
                    ))
                })
        })
    }
}

/// What the store said when asked for JetStream and it had none.
#[derive(Debug, thiserror::Error)]
#[error(
    "the NATS servers have no JetStream, which keeps the shared accounts: \
     start nats-server with -js (and a store directory, -sd)"
)]
struct NoJetStream;

/// Whether NATS said it has no JetStream at all (nobody answers its API),
/// as opposed to being busy or out of reach.
fn no_jetstream(e: &async_nats::jetstream::context::CreateStreamError) -> bool {
    e.kind() == async_nats::jetstream::context::CreateStreamErrorKind::JetStreamUnavailable
}

/// `username`'s record and its revision.
async fn read(accounts: &kv::Store, username: &str) -> Result<(UserRecord, u64), AccountError> {
    let entry = accounts
        .entry(user_key(username))
        .await
        .map_err(unavailable)?
        .filter(|e| e.operation == kv::Operation::Put)
        .ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
    let record = UserRecord::decode(&entry.value)
        .map_err(|e| unavailable(format!("{username}'s record is damaged: {e}")))?;
    Ok((record, entry.revision))
}

/// Compare-and-swap of `username`'s record.
async fn swap(
    accounts: &kv::Store,
    username: &str,
    mut change: impl FnMut(&mut UserRecord) -> Result<(), AccountError>,
) -> Result<(UserRecord, u64), AccountError> {
    for _ in 0..CAS_ATTEMPTS {
        let (mut record, revision) = read(accounts, username).await?;
        change(&mut record)?;
        match accounts
            .update(user_key(username), record.encode(), revision)
            .await
        {
            Ok(revision) => return Ok((record, revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(unavailable(e)),
        }
    }
    Err(unavailable(
        "other changes to the account kept coming first",
    ))
}

/// The change a store entry makes to the copy; `None` for entries the copy
/// does not keep, and for malformed ones (logged).
fn change_of(entry: &kv::Entry) -> Option<Change> {
    let put = entry.operation == kv::Operation::Put;
    if entry.bucket == REVOKED_BUCKET {
        let hash = entry.key.strip_prefix("token.")?;
        let until = std::str::from_utf8(&entry.value).ok()?.parse().ok();
        return match (put, until) {
            (true, Some(until)) if hash.len() == 64 => {
                Some(Change::Revoked(hash.to_owned(), until))
            }
            _ => None,
        };
    }
    if entry.key == TOKEN_KEY {
        let key = std::str::from_utf8(&entry.value).ok()?;
        return (put && tokens::unhex(key).is_some_and(|k| k.len() == 32))
            .then(|| Change::TokenKey(key.to_owned()));
    }
    let name = entry.key.strip_prefix("user.")?;
    if !put {
        return Some(Change::Gone(name.to_owned(), entry.revision));
    }
    match UserRecord::decode(&entry.value) {
        Ok(record) if record.username.eq_ignore_ascii_case(name) => {
            Some(Change::User(record, entry.revision))
        }
        Ok(_) => {
            warn!(key = %entry.key, "shared accounts: a record under another name's key; skipped");
            None
        }
        Err(e) => {
            warn!(key = %entry.key, error = %e, "shared accounts: a malformed record; skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_for_the_store() {
        assert_eq!(user_key("Alice_1"), "user.alice_1");
        let index = key_index("SHA256:ab+/cd=");
        assert!(
            index
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        );
    }
}
