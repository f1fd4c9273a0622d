//! Tokens on a node of a cluster: signed, so that any node takes any
//! node's token without asking anybody. A token is
//! `dg1.<account id>.<generation>.<expiry>.<nonce>.<HMAC-SHA256>`, signed
//! with the cluster's key (`secret.token_key`, made once by the first
//! node); it is valid until it expires, the account's generation moves on
//! (a new password, a ban) or it is revoked (logged out), all of which a
//! node checks in its own copy of the accounts.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::replica;
use super::store::{AccountError, AccountStore, User, from_unix, hex, random_bytes, unix};

/// Tokens of the shared store start with this (a single server's are 64
/// hex digits).
const TOKEN_PREFIX: &str = "dg1";

/// The signing key, as this node's copy has it.
fn signing_key(store: &AccountStore) -> Result<ring::hmac::Key, AccountError> {
    let out_of_reach = |why: &str| AccountError::Unavailable(why.to_owned());
    let hex_key = replica::token_key(store)?.ok_or_else(|| {
        out_of_reach(
            "this node has not heard from the cluster's accounts yet (the key that signs tokens)",
        )
    })?;
    let bytes = unhex(&hex_key)
        .ok_or_else(|| out_of_reach("the cluster's key that signs tokens is damaged"))?;
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
}

/// A token naming `user` and its generation, signed with the copy's key.
pub(super) fn sign(
    store: &AccountStore,
    user: &User,
    expires_at: SystemTime,
) -> Result<String, AccountError> {
    let key = signing_key(store)?;
    let body = format!(
        "{TOKEN_PREFIX}.{}.{}.{}.{}",
        user.id,
        user.generation,
        unix(expires_at),
        hex(&random_bytes::<16>()?)
    );
    let tag = ring::hmac::sign(&key, body.as_bytes());
    Ok(format!("{body}.{}", hex(tag.as_ref())))
}

/// The user a shared token belongs to: signed with the cluster's key, not
/// expired, of the account's present generation, not revoked, and the
/// account not banned.
pub(super) fn check(store: &AccountStore, token: &str) -> Result<User, AccountError> {
    let (id, generation) = verify(store, token)?;
    let user = store.user_by_id(id).map_err(|_| AccountError::BadToken)?;
    if user.generation != generation
        || replica::is_revoked(store, &hex(&Sha256::digest(token.as_bytes())))?
    {
        return Err(AccountError::BadToken);
    }
    if user.is_banned {
        return Err(AccountError::Banned(user.username));
    }
    Ok(user)
}

/// Checks a token's signature and expiry; its account id and generation.
pub(super) fn verify(store: &AccountStore, token: &str) -> Result<(i64, i64), AccountError> {
    if token.len() > 256 {
        return Err(AccountError::BadToken);
    }
    let (body, tag) = token.rsplit_once('.').ok_or(AccountError::BadToken)?;
    let tag = unhex(tag).ok_or(AccountError::BadToken)?;
    let key = signing_key(store)?;
    ring::hmac::verify(&key, body.as_bytes(), &tag).map_err(|_| AccountError::BadToken)?;
    let fields: Vec<&str> = body.split('.').collect();
    let [TOKEN_PREFIX, id, generation, expires, _nonce] = fields[..] else {
        return Err(AccountError::BadToken);
    };
    let number = |s: &str| s.parse::<i64>().map_err(|_| AccountError::BadToken);
    if from_unix(number(expires)?) <= SystemTime::now() {
        return Err(AccountError::BadToken);
    }
    Ok((number(id)?, number(generation)?))
}

/// Whether a token is one of the shared store's (a single server's are not).
pub fn is_shared_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX) && token.as_bytes().get(TOKEN_PREFIX.len()) == Some(&b'.')
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::replica::{Change, UserRecord};
    use std::time::Duration;

    #[test]
    fn hex_round_trips_and_garbage_is_refused() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("éé"), None);
    }

    fn copy_with_alice() -> (AccountStore, User) {
        let store = AccountStore::in_memory(Duration::from_secs(3600)).expect("store");
        let record = UserRecord::for_tests(7, "alice", 3);
        replica::apply(
            &store,
            &[Change::TokenKey(hex(&[9; 32])), Change::User(record, 10)],
        )
        .expect("apply");
        let alice = store.user("alice").expect("alice");
        (store, alice)
    }

    #[test]
    fn a_signed_token_names_its_account_until_anything_about_it_changes() {
        let (store, alice) = copy_with_alice();
        let later = SystemTime::now() + Duration::from_secs(60);
        let token = sign(&store, &alice, later).expect("sign");
        assert!(is_shared_token(&token));
        assert_eq!(check(&store, &token).expect("valid").id, 7);

        // Any byte changed, the signature or the claims, is nobody.
        for i in [4, token.len() / 2, token.len() - 1] {
            let mut forged = token.clone().into_bytes();
            forged[i] = if forged[i] == b'1' { b'2' } else { b'1' };
            let forged = String::from_utf8(forged).expect("ASCII");
            assert!(matches!(
                check(&store, &forged),
                Err(AccountError::BadToken)
            ));
        }
        for garbage in [
            "",
            "dg1.",
            "dg1.7.3.9.x.y",
            "dg1.7.3",
            &"f".repeat(300),
            "dg1.é.é",
        ] {
            assert!(matches!(
                check(&store, garbage),
                Err(AccountError::BadToken)
            ));
        }
        let expired =
            sign(&store, &alice, SystemTime::now() - Duration::from_secs(1)).expect("sign");
        assert!(matches!(
            check(&store, &expired),
            Err(AccountError::BadToken)
        ));

        // Another key (another cluster) signed it: nobody.
        let other = AccountStore::in_memory(Duration::from_secs(3600)).expect("store");
        replica::apply(&other, &[Change::TokenKey(hex(&[8; 32]))]).expect("key");
        let foreign = sign(&other, &alice, later).expect("sign");
        assert!(matches!(
            check(&store, &foreign),
            Err(AccountError::BadToken)
        ));

        // A new password (the generation moves on) ends it, on every node.
        let mut record = replica::record(&store, "alice")
            .expect("read")
            .expect("alice");
        record.generation += 1;
        replica::apply(&store, &[Change::User(record.clone(), 11)]).expect("apply");
        assert!(matches!(check(&store, &token), Err(AccountError::BadToken)));

        // So does a ban, and a revocation of the one token.
        let alice = store.user("alice").expect("alice");
        let token = sign(&store, &alice, later).expect("sign");
        let hash = hex(&Sha256::digest(token.as_bytes()));
        replica::apply(&store, &[Change::Revoked(hash, unix(later))]).expect("revoke");
        assert!(matches!(check(&store, &token), Err(AccountError::BadToken)));
        let token = sign(&store, &alice, later).expect("sign");
        record.is_banned = true;
        replica::apply(&store, &[Change::User(record, 12)]).expect("ban");
        assert!(matches!(
            check(&store, &token),
            Err(AccountError::Banned(_))
        ));
    }

    #[test]
    fn only_shared_tokens_look_like_one() {
        assert!(is_shared_token("dg1.5.0.99.ab.cd"));
        assert!(!is_shared_token("dg1x"));
        assert!(!is_shared_token(&"a".repeat(64)));
    }
}
