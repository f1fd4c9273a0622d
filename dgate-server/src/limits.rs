//! Limits per address, shared by every front end.
//!
//! - [`address_key`]: what "one address" means: an IPv4 address, or an IPv6
//!   /64 (what one customer of a provider gets, so one host cannot multiply
//!   itself by picking new addresses);
//! - [`Trusted`]: `server.trusted_addresses` (a local reverse proxy, a load
//!   test), exempt from the per-address connection and spectator caps but
//!   never from login and registration limits;
//! - [`AddressLimiter`]: connections one address holds open at once
//!   (`server.max_connections_per_address`), over gRPC, SSH and HTTP together;
//! - [`LogOnce`]: a refusal is logged at most once a minute per address, so
//!   that an attack cannot flood the log;
//! - [`PerName`]: at most so many acts of one user per window (chat lines,
//!   messages to players).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most `max` acts of one name (case-insensitively) per sliding `window`.
#[derive(Debug)]
pub struct PerName {
    max: usize,
    window: Duration,
    acts: Mutex<HashMap<String, std::collections::VecDeque<Instant>>>,
}

impl PerName {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            acts: Mutex::default(),
        }
    }

    /// Counts one act of `name`; `Err(wait)` (how long until the next is
    /// allowed) past the limit, which then counts nothing.
    pub fn allow(&self, name: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut acts = self.acts.lock().unwrap_or_else(|p| p.into_inner());
        acts.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < self.window);
            !times.is_empty()
        });
        let times = acts.entry(name.to_lowercase()).or_default();
        if times.len() >= self.max {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        times.push_back(now);
        Ok(())
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// The key every per-address limit counts under: IPv4 as is (IPv4-mapped
/// IPv6 included), IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

/// The addresses exempt from per-address connection and spectator caps:
/// exactly these (an IPv4-mapped IPv6 address is its IPv4 one), never
/// their /64.
#[derive(Debug, Clone, Default)]
pub struct Trusted(Arc<[IpAddr]>);

impl Trusted {
    pub fn new(addresses: &[IpAddr]) -> Self {
        Self(addresses.iter().map(|ip| ip.to_canonical()).collect())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

#[derive(Debug, Clone)]
pub struct AddressLimiter {
    max: usize,
    trusted: Trusted,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct AddressSlot {
    limiter: AddressLimiter,
    /// `None` for a trusted address (not counted).
    key: Option<IpAddr>,
}

impl AddressLimiter {
    pub fn new(max: usize, trusted: Trusted) -> Self {
        Self {
            max,
            trusted,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a connection from `ip`, or `None` when its address has
    /// `max` open. Trusted addresses always get one.
    pub fn admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        if self.trusted.contains(ip) {
            return Some(AddressSlot {
                limiter: self.clone(),
                key: None,
            });
        }
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            limiter: self.clone(),
            key: Some(key),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn trusted(&self) -> &Trusted {
        &self.trusted
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// At most one log line per address per [`LogOnce::PERIOD`] for one kind of
/// refusal.
#[derive(Debug, Default)]
pub struct LogOnce {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl LogOnce {
    pub const PERIOD: Duration = Duration::from_secs(60);
    /// Addresses remembered at most; past it the oldest are forgotten.
    const REMEMBERED: usize = 4096;

    /// True when a refusal for `ip` should be logged now.
    pub fn should_log(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let key = address_key(ip);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < Self::PERIOD)
        {
            return false;
        }
        if last.len() >= Self::REMEMBERED {
            last.retain(|_, t| now.duration_since(*t) < Self::PERIOD);
            if last.len() >= Self::REMEMBERED {
                // Still full: an attack from many addresses; log none of the new ones.
                return false;
            }
        }
        last.insert(key, now);
        true
    }
}

/// The next connection on `listener` (named `what` in the log). A failed
/// accept is never fatal: it is waited out (see [`accept_failed`]).
pub async fn accept(
    listener: &tokio::net::TcpListener,
    what: &str,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => accept_failed(what, &e).await,
        }
    }
}

/// Waits out a failed `accept`: out of file descriptors (`EMFILE`,
/// `ENFILE`) lasts until connections close, so the loop backs off instead
/// of spinning; logged at most once a second.
async fn accept_failed(listener: &str, error: &std::io::Error) {
    static LAST_LOGGED: Mutex<Option<Instant>> = Mutex::new(None);
    let out_of_files = matches!(
        error.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
    );
    {
        let mut last = LAST_LOGGED.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::warn!(listener, error = %error, "cannot accept a connection");
        }
    }
    let pause = if out_of_files {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(5)
    };
    tokio::time::sleep(pause).await;
}

/// Raises the soft limit on open files to the hard limit, so that the
/// server's connection limits, not the default 1024, decide who is served.
/// Returns the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// `text` from the network made safe to log: control characters escaped,
/// at most 64 characters.
pub fn loggable(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_slots_back() {
        let limiter = AddressLimiter::new(2, Trusted::default());
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let a = limiter.admit(ip).expect("first");
        let _b = limiter.admit(ip).expect("second");
        assert!(limiter.admit(ip).is_none(), "third refused");
        assert!(
            limiter.admit(other).is_some(),
            "other addresses are not affected"
        );
        drop(a);
        assert!(
            limiter.admit(ip).is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn trusted_addresses_are_not_counted() {
        let local: IpAddr = [127, 0, 0, 1].into();
        let limiter = AddressLimiter::new(1, Trusted::new(&[local]));
        let slots: Vec<_> = (0..10).map(|_| limiter.admit(local)).collect();
        assert!(slots.iter().all(Option::is_some));
        let stranger: IpAddr = [127, 0, 0, 2].into();
        let _one = limiter.admit(stranger).expect("first");
        assert!(limiter.admit(stranger).is_none());
    }

    #[test]
    fn one_ipv6_slash_64_is_one_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("mapped");
        assert_eq!(address_key(mapped), IpAddr::from([192, 0, 2, 7]));
        let limiter = AddressLimiter::new(1, Trusted::default());
        let _held = limiter.admit(a).expect("first");
        assert!(limiter.admit(b).is_none(), "same /64");
        assert!(limiter.admit(other).is_some(), "another /64");
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_address() {
        let log = LogOnce::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(log.should_log(ip));
        assert!(!log.should_log(ip));
        assert!(log.should_log([10, 0, 0, 2].into()));
    }

    #[test]
    fn network_text_is_escaped_before_it_is_logged() {
        assert_eq!(loggable("bob\nFAKE LINE"), "bob\\nFAKE LINE");
        assert_eq!(loggable("\u{1b}[31m"), "\\u{1b}[31m");
        assert_eq!(loggable(&"x".repeat(100)).chars().count(), 65);
    }
}
