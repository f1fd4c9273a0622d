//! The account screens of an SSH connection: log in, register, change the
//! password, and the SSH keys of the account.

use std::sync::Arc;

use crossterm::event::KeyCode;
use dgate_tui::watch_menu::LETTERS;
use tracing::info;

use super::connection::{CLEAR, Connection, End, Step};
use crate::accounts::{AccountError, check_username};

pub(super) async fn login(conn: &mut Connection) -> Result<(), End> {
    conn.out
        .write(format!("{CLEAR}Log in (Esc cancels)\r\n\r\n"))
        .await?;
    let Some(name) = conn.read_line("Username: ", false, 20).await? else {
        return Ok(());
    };
    let Some(password) = conn.read_line("Password: ", true, 1024).await? else {
        return Ok(());
    };
    let peer = conn.peer.map(|p| p.ip());
    let logins = Arc::clone(&conn.front.logins);
    match logins
        .check_password(&name, password.into_bytes(), peer, "ssh menu")
        .await
    {
        Ok(user) => {
            info!(username = %user.username, "logged in over SSH (menu)");
            conn.message = Some(format!("Welcome back, {}.", user.username));
            conn.logged_in(user);
        }
        Err(e) => conn.message = Some(format!("Cannot log in: {e}.")),
    }
    Ok(())
}

pub(super) async fn register(conn: &mut Connection) -> Result<(), End> {
    conn.out
        .write(format!(
            "{CLEAR}Register (Esc cancels)\r\n\r\nA name of 2 to 20 letters, digits or '_'.\r\n\r\n"
        ))
        .await?;
    let Some(name) = conn.read_line("Username: ", false, 20).await? else {
        return Ok(());
    };
    if let Err(why) = check_username(&name) {
        conn.message = Some(format!("Not registered: {why}."));
        return Ok(());
    }
    let Some(password) = conn.read_line("Password: ", true, 1024).await? else {
        return Ok(());
    };
    let Some(again) = conn.read_line("Again: ", true, 1024).await? else {
        return Ok(());
    };
    if password != again {
        conn.message = Some("Not registered: the passwords differ.".into());
        return Ok(());
    }
    let peer = conn.peer.map(|p| p.ip());
    let logins = Arc::clone(&conn.front.logins);
    match logins
        .register(&name, password.into_bytes(), None, peer, "ssh")
        .await
    {
        Ok(user) => {
            conn.message = Some(format!(
                "Welcome, {}! Next time: ssh {}@this-host",
                user.username, user.username
            ));
            conn.logged_in(user);
        }
        Err(e) => conn.message = Some(format!("Not registered: {e}.")),
    }
    Ok(())
}

pub(super) async fn change_password(conn: &mut Connection) -> Result<(), End> {
    let Some(user) = conn.user.clone() else {
        return Ok(());
    };
    conn.out
        .write(format!("{CLEAR}Change your password (Esc cancels)\r\n\r\n"))
        .await?;
    let Some(old) = conn.read_line("Current password: ", true, 1024).await? else {
        return Ok(());
    };
    let Some(new) = conn.read_line("New password: ", true, 1024).await? else {
        return Ok(());
    };
    let Some(again) = conn.read_line("Again: ", true, 1024).await? else {
        return Ok(());
    };
    if new != again {
        conn.message = Some("Unchanged: the new passwords differ.".into());
        return Ok(());
    }
    let peer = conn.peer.map(|p| p.ip());
    let logins = Arc::clone(&conn.front.logins);
    // This connection is the one that changes it: it lives on under the next
    // generation, taken before the change commits so that the check of live
    // sessions never sees it behind.
    if let Some(revocation) = &conn.revocation {
        revocation.renew(user.generation + 1);
    }
    let changed = logins
        .change_password(&user, old.into_bytes(), new.into_bytes(), peer, "ssh")
        .await;
    if changed.is_err()
        && let Some(revocation) = &conn.revocation
    {
        revocation.renew(user.generation);
    }
    conn.message = Some(match changed {
        Ok(changed) => {
            // This connection lives on; the account's other sessions end.
            if let Some(revocation) = &conn.revocation {
                revocation.renew(changed.generation);
            }
            conn.user = Some(changed);
            "Password changed; your other sessions are logged out.".into()
        }
        Err(e) => format!("Unchanged: {e}."),
    });
    Ok(())
}

/// The account's SSH keys: list, add (paste a line), delete.
pub(super) async fn keys(conn: &mut Connection) -> Result<(), End> {
    let Some(user) = conn.user.clone() else {
        return Ok(());
    };
    let mut note = String::new();
    loop {
        let store = Arc::clone(&conn.front.accounts);
        let name = user.username.clone();
        let keys = blocking(move || store.public_keys(&name))
            .await
            .unwrap_or_default();
        let mut text = format!("{CLEAR}Your SSH keys\r\n\r\n");
        if keys.is_empty() {
            text.push_str("  (none yet)\r\n");
        }
        for (letter, key) in LETTERS.iter().zip(&keys) {
            text.push_str(&format!(
                "  {}) {} {}\r\n",
                char::from(*letter),
                key.fingerprint,
                key.comment
            ));
        }
        text.push_str(&format!(
            "\r\n{note}\r\n\r\n  a) add a key    d) delete one    q) back\r\n\r\n=> "
        ));
        conn.out.write(text).await?;
        note.clear();
        let Step::Key(key) = conn.next_key(true).await? else {
            continue;
        };
        match key.code {
            KeyCode::Char('a') => {
                conn.out
                    .write("\r\nPaste one line of your public key (~/.ssh/id_ed25519.pub):\r\n")
                    .await?;
                let Some(line) = conn.read_line("", false, 8192).await? else {
                    continue;
                };
                let store = Arc::clone(&conn.front.accounts);
                let name = user.username.clone();
                note = match blocking(move || store.add_public_key(&name, &line)).await {
                    Ok(added) => format!(
                        "Added {}. Log in with: ssh {}@this-host",
                        added.fingerprint, user.username
                    ),
                    Err(e) => format!("Not added: {e}."),
                };
            }
            KeyCode::Char('d') if !keys.is_empty() => {
                conn.out
                    .write("\r\nDelete which key (its letter)? ")
                    .await?;
                let Step::Key(choice) = conn.next_key(true).await? else {
                    continue;
                };
                let chosen = match choice.code {
                    KeyCode::Char(c) => LETTERS
                        .iter()
                        .position(|l| char::from(*l) == c)
                        .and_then(|at| keys.get(at)),
                    _ => None,
                };
                let Some(chosen) = chosen else {
                    note = "Nothing deleted.".into();
                    continue;
                };
                let store = Arc::clone(&conn.front.accounts);
                let (name, fingerprint) = (user.username.clone(), chosen.fingerprint.clone());
                note = match blocking(move || store.remove_public_key(&name, &fingerprint)).await {
                    Ok(true) => format!("Deleted {}.", chosen.fingerprint),
                    Ok(false) => "That key was already gone.".into(),
                    Err(e) => format!("Not deleted: {e}."),
                };
            }
            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
            _ => note = "Press a, d or q.".into(),
        }
    }
}

/// Account work (SQLite, argon2) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(AccountError::Io(format!("the account task failed: {e}"))))
}
