//! Password hashing: argon2id with the argon2 crate's recommended parameters,
//! stored as standard PHC strings, run through a pool of one 19 MiB buffer per
//! core (which also bounds how many hashes run at once).

use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{Output, PasswordHash, SaltString};

use super::store::{AccountError, random_bytes};

/// Memory for argon2id hashes (19 MiB each with the recommended parameters),
/// lent out from a pool with one buffer per core. At most that many hashes
/// run at once, and their memory is reused: allocated afresh for every login,
/// it would stay with whichever thread's allocator arena freed it, and a
/// burst of logins grew the server by hundreds of MiB for good.
struct HashMemory {
    free: Mutex<Vec<Vec<argon2::Block>>>,
    returned: std::sync::Condvar,
}

static HASH_MEMORY: std::sync::LazyLock<HashMemory> = std::sync::LazyLock::new(|| {
    let slots = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    HashMemory {
        free: Mutex::new((0..slots).map(|_| Vec::new()).collect()),
        returned: std::sync::Condvar::new(),
    }
});

impl HashMemory {
    /// Runs `hash` with memory enough for `params`, waiting for a free buffer.
    fn with<T>(&self, params: &argon2::Params, hash: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let mut blocks = loop {
            match free.pop() {
                Some(blocks) => break blocks,
                None => free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner()),
            }
        };
        drop(free);
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), argon2::Block::default());
        }
        let result = hash(&mut blocks);
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(blocks);
        self.returned.notify_one();
        result
    }
}

/// The raw argon2 output of `password` with `salt` (bytes), through the pool.
fn derive(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    HASH_MEMORY.with(argon.params(), |memory| {
        argon.hash_password_into_with_memory(password, salt, out, memory)
    })
}

/// argon2id with the crate's recommended parameters and a random salt, as a
/// PHC string.
pub(super) fn hash_password(password: &[u8]) -> Result<String, AccountError> {
    let failed = |e: &dyn std::fmt::Display| AccountError::Hashing(e.to_string());
    let salt_bytes = random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| failed(&e))?;
    let argon = Argon2::default();
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    derive(&argon, password, &salt_bytes, &mut out).map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon.params().try_into().map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`; the derived keys are
/// compared in constant time (`Output`'s equality).
pub(super) fn verify_password(password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::V0x13,
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if derive(&argon, password, salt, &mut out).is_err() {
        return false;
    }
    Output::new(&out).is_ok_and(|derived| derived == expected)
}

/// A hash of a fixed password, checked when the user does not exist, so that a
/// failed login takes as long whether or not the name is registered.
pub(super) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(b"dgate-timing-equaliser").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_hashes_are_standard_argon2id_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password(b"correct horse").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok(),
            "the argon2 crate accepts ours: {ours}"
        );
        let salt = SaltString::encode_b64(b"sixteen byte salt").expect("salt");
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_password(b"battery staple", &theirs));
        assert!(!verify_password(b"battery stapler", &theirs));
        assert!(!verify_password(b"correct horse", "$argon2id$v=19$garbage"));
        // More hashes at once than the pool has buffers: each waits its turn.
        let threads: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(|| {
                    let hash = hash_password(b"correct horse").unwrap_or_default();
                    verify_password(b"correct horse", &hash)
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().ok(), Some(true));
        }
    }
}
