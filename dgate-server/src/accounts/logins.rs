//! Every password check and registration, whichever front end it arrives on
//! (gRPC, the SSH login, the SSH menus): the limits ([`LoginLimiter`]), the
//! bounded queue of password work, the metrics and one log line each.
//!
//! Password hashing is slow on purpose (argon2id) and runs on tokio's
//! blocking threads, which token checks and the database use too. At most
//! [`Logins::QUEUE`] password checks are admitted at once (running or
//! waiting for one of the hash buffers); past that a check is refused at
//! once with [`LoginError::Busy`], so a flood of guesses never builds a queue
//! that token checks and SSH logins wait behind.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::limiter::{LoginLimiter, Refused};
use super::store::{AccountError, AccountStore, Login, User};
use crate::limits::{LogOnce, loggable};
use crate::metrics::{Metrics, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed logins; try again in {} s", retry_after.as_secs().max(1))]
    TooManyFailures { retry_after: Duration },
    #[error("too many registrations from your address; try again in {} min", retry_after.as_secs().div_ceil(60).max(1))]
    TooManyRegistrations { retry_after: Duration },
    #[error("the server is busy checking passwords; try again in a moment")]
    Busy,
    #[error(transparent)]
    Account(#[from] AccountError),
}

#[derive(Debug)]
pub struct Logins {
    store: Arc<AccountStore>,
    limiter: Arc<LoginLimiter>,
    queue: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    refusals_logged: LogOnce,
}

impl Logins {
    /// Password checks admitted at once, running or waiting for a hash buffer.
    pub const QUEUE: usize = 32;

    pub fn new(store: Arc<AccountStore>, limiter: LoginLimiter, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            limiter: Arc::new(limiter),
            queue: Arc::new(Semaphore::new(Self::QUEUE)),
            metrics,
            refusals_logged: LogOnce::default(),
        }
    }

    pub fn store(&self) -> &Arc<AccountStore> {
        &self.store
    }

    /// The account `username` with `password`, counted against the login
    /// limits. `via` names the front end in the log.
    pub async fn check_password(
        &self,
        username: &str,
        password: Vec<u8>,
        peer: Option<IpAddr>,
        via: &'static str,
    ) -> Result<User, LoginError> {
        let store = Arc::clone(&self.store);
        let name = username.to_owned();
        self.attempt(username, peer, via, move || {
            store.check_credentials(&name, &password)
        })
        .await
    }

    /// Refuses at once, counted and logged as a refused check, a password
    /// check of `username` from `peer` that the limits would refuse now;
    /// takes no place. For a front end that can say why before it asks for
    /// a password.
    pub fn refused_now(
        &self,
        username: &str,
        peer: Option<IpAddr>,
        via: &'static str,
    ) -> Result<(), LoginError> {
        match self.limiter.refusal(username, peer, Instant::now()) {
            None => Ok(()),
            Some(Refused { retry_after }) => {
                self.refused(Refusal::Logins, peer, username, via);
                Err(LoginError::TooManyFailures { retry_after })
            }
        }
    }

    /// A password login that issues a token (gRPC, a browser's cookie).
    pub async fn login(
        &self,
        username: &str,
        password: Vec<u8>,
        peer: Option<IpAddr>,
        via: &'static str,
    ) -> Result<Login, LoginError> {
        let store = Arc::clone(&self.store);
        let name = username.to_owned();
        let login = self
            .attempt(username, peer, via, move || store.login(&name, &password))
            .await?;
        Ok(login)
    }

    /// A new password for `user`, who must give the current one (counted
    /// like a login). Returns the account as it is now (a new credential
    /// generation: the user's other live sessions end).
    pub async fn change_password(
        &self,
        user: &User,
        old: Vec<u8>,
        new: Vec<u8>,
        peer: Option<IpAddr>,
        via: &'static str,
    ) -> Result<User, LoginError> {
        let store = Arc::clone(&self.store);
        let name = user.username.clone();
        let changed = self
            .attempt(&user.username, peer, via, move || {
                store.check_credentials(&name, &old)?;
                store.set_password(&name, &new)?;
                store.user(&name)
            })
            .await?;
        info!(username = %user.username, via, "password changed");
        Ok(changed)
    }

    /// A new account, counted against the registrations of `peer`'s address.
    pub async fn register(
        &self,
        username: &str,
        password: Vec<u8>,
        email: Option<String>,
        peer: Option<IpAddr>,
        via: &'static str,
    ) -> Result<User, LoginError> {
        // Bad names and passwords are refused before they cost a place.
        super::check_username(username).map_err(super::store::invalid_username)?;
        super::store::check_password(&password)?;
        if let Err(Refused { retry_after }) = self.limiter.begin_registration(peer, Instant::now())
        {
            self.refused(Refusal::Registrations, peer, username, via);
            return Err(LoginError::TooManyRegistrations { retry_after });
        }
        let store = Arc::clone(&self.store);
        let name = username.to_owned();
        let user = self
            .hashing(move || store.register(&name, &password, email.as_deref()))
            .await?;
        info!(username = %user.username, via, peer = ?peer, "account registered");
        Ok(user)
    }

    /// One password check: a place in the limits first, the check on the
    /// bounded queue, then the place given back or kept.
    async fn attempt<T: Send + 'static>(
        &self,
        username: &str,
        peer: Option<IpAddr>,
        via: &'static str,
        check: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, LoginError> {
        let attempt = match self.limiter.begin(username, peer, Instant::now()) {
            Ok(attempt) => attempt,
            Err(Refused { retry_after }) => {
                self.refused(Refusal::Logins, peer, username, via);
                return Err(LoginError::TooManyFailures { retry_after });
            }
        };
        if !attempt.delay.is_zero() {
            tokio::time::sleep(attempt.delay).await;
        }
        match self.hashing(check).await {
            Ok(value) => {
                attempt.succeeded();
                Ok(value)
            }
            Err(LoginError::Account(
                e @ (AccountError::BadCredentials | AccountError::Banned(_)),
            )) => {
                attempt.failed();
                self.metrics.failed_logins.inc();
                info!(username = %loggable(username), via, peer = ?peer, "failed login");
                Err(e.into())
            }
            Err(e) => {
                // Not the caller's fault (busy, a database error): not counted.
                attempt.succeeded();
                Err(e)
            }
        }
    }

    /// Runs password work off the async threads, if the queue has room.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, LoginError> {
        let Ok(permit) = Arc::clone(&self.queue).try_acquire_owned() else {
            self.metrics.refused(Refusal::PasswordQueue);
            return Err(LoginError::Busy);
        };
        let result = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .unwrap_or_else(|e| Err(AccountError::Io(format!("the account task failed: {e}"))));
        if let Err(
            e @ (AccountError::Database(_)
            | AccountError::Io(_)
            | AccountError::Hashing(_)
            | AccountError::Random(_)
            | AccountError::Unavailable(_)),
        ) = &result
        {
            warn!(error = %e, "account work failed");
        }
        Ok(result?)
    }

    fn refused(&self, why: Refusal, peer: Option<IpAddr>, username: &str, via: &'static str) {
        self.metrics.refused(why);
        if let Some(ip) = peer
            && !self.refusals_logged.should_log(ip)
        {
            return;
        }
        info!(reason = why.name(), username = %loggable(username), via, peer = ?peer, "refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccountsConfig;

    fn logins(config: AccountsConfig) -> Logins {
        let store = AccountStore::in_memory(Duration::from_secs(3600)).expect("store");
        Logins::new(
            Arc::new(store),
            LoginLimiter::new(&config),
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test]
    async fn concurrent_wrong_passwords_get_no_more_checks_than_the_limit() {
        let logins = Arc::new(logins(AccountsConfig::default()));
        let owner = Some(IpAddr::from([10, 0, 0, 1]));
        logins
            .register("alice", b"right password".to_vec(), None, owner, "test")
            .await
            .expect("register");
        let stranger = Some(IpAddr::from([10, 0, 0, 2]));
        let guesses: Vec<_> = (0..40)
            .map(|i| {
                let logins = Arc::clone(&logins);
                tokio::spawn(async move {
                    logins
                        .check_password(
                            "alice",
                            format!("guess {i}").into_bytes(),
                            stranger,
                            "test",
                        )
                        .await
                })
            })
            .collect();
        let mut wrong = 0;
        for guess in guesses {
            match guess.await.expect("task") {
                Err(LoginError::Account(AccountError::BadCredentials)) => wrong += 1,
                Err(LoginError::TooManyFailures { .. } | LoginError::Busy) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(wrong, 5, "exactly the limit was checked");
        // The owner, from their own address, still logs in.
        let user = logins
            .check_password("alice", b"right password".to_vec(), owner, "test")
            .await
            .expect("the owner is not locked out");
        assert_eq!(user.username, "alice");
    }

    #[tokio::test]
    async fn registrations_from_one_address_are_limited() {
        let logins = logins(AccountsConfig {
            registrations_per_address_per_hour: 3,
            ..AccountsConfig::default()
        });
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..3 {
            logins
                .register(
                    &format!("user{i}"),
                    b"a password".to_vec(),
                    None,
                    ip,
                    "test",
                )
                .await
                .expect("within the limit");
        }
        let refused = logins
            .register("user9", b"a password".to_vec(), None, ip, "test")
            .await
            .expect_err("over the limit");
        assert!(
            matches!(refused, LoginError::TooManyRegistrations { .. }),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("try again in 60 min"),
            "{refused}"
        );
        // A bad name costs no place and says what is wrong.
        let bad = logins
            .register(
                "alice-val",
                b"a password".to_vec(),
                None,
                Some(IpAddr::from([10, 0, 0, 3])),
                "test",
            )
            .await
            .expect_err("bad name");
        assert!(bad.to_string().contains("role"), "{bad}");
    }
}
