//! The account screens of an SSH connection: log in, register, change the
//! password, and the SSH keys of the account.

use std::net::SocketAddr;
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
            conn.front.manager.registered(&user.username);
            conn.message = Some(format!(
                "Welcome, {}! Next time: {}",
                user.username,
                login_command(conn, &user.username)
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
                        "Added {}. Log in with: {}",
                        added.fingerprint,
                        login_command(conn, &user.username)
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

/// The `ssh` command that logs `username` in here, as a player types it.
fn login_command(conn: &Connection, username: &str) -> String {
    let ssh = &conn.front.manager.config().ssh;
    ssh_command(username, ssh.public_host.as_deref(), conn.local, ssh.listen)
}

/// `ssh -p PORT NAME@HOST` (no `-p` for port 22). The host and port are
/// `public_host`'s when the operator names them; else the address the
/// client connected to (`local`), else the listener's (its machine's name
/// when it listens on every address).
fn ssh_command(
    username: &str,
    public_host: Option<&str>,
    local: Option<SocketAddr>,
    listen: SocketAddr,
) -> String {
    let reached = local.unwrap_or(listen);
    let (host, port) = match public_host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(public) => {
            let (host, port) = split_port(public);
            (host.to_owned(), port.unwrap_or(reached.port()))
        }
        None => {
            let ip = reached.ip().to_canonical();
            let host = if ip.is_unspecified() {
                machine_name()
            } else {
                ip.to_string()
            };
            (host, reached.port())
        }
    };
    match port {
        22 => format!("ssh {username}@{host}"),
        port => format!("ssh -p {port} {username}@{host}"),
    }
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address: the host and
/// the port, if one is given.
fn split_port(text: &str) -> (&str, Option<u16>) {
    if let Some((host, rest)) = text.strip_prefix('[').and_then(|t| t.split_once(']')) {
        return (host, rest.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (text, None),
        },
        _ => (text, None),
    }
}

/// This machine's host name, for a listener on every address.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Account work (SQLite, argon2) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(AccountError::Io(format!("the account task failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    #[test]
    fn the_ssh_command_names_the_port_and_host_players_use() {
        let listen = addr("0.0.0.0:2222");
        let local = Some(addr("192.0.2.7:2222"));
        // The address the client reached.
        assert_eq!(
            ssh_command("carol", None, local, listen),
            "ssh -p 2222 carol@192.0.2.7"
        );
        // The operator's name for the server, with the port reached...
        assert_eq!(
            ssh_command("carol", Some("nethack.example.org"), local, listen),
            "ssh -p 2222 carol@nethack.example.org"
        );
        // ...or the port players use, and no -p for 22.
        assert_eq!(
            ssh_command("carol", Some("nethack.example.org:22"), local, listen),
            "ssh carol@nethack.example.org"
        );
        assert_eq!(
            ssh_command("carol", Some("[2001:db8::1]:2022"), local, listen),
            "ssh -p 2022 carol@2001:db8::1"
        );
        assert_eq!(
            ssh_command("carol", Some("2001:db8::1"), local, listen),
            "ssh -p 2222 carol@2001:db8::1"
        );
        assert_eq!(
            ssh_command("carol", Some("  "), Some(addr("10.0.0.1:22")), listen),
            "ssh carol@10.0.0.1"
        );
        // An IPv4 client on a dual-stack listener; no address known at all.
        assert_eq!(
            ssh_command("carol", None, Some(addr("[::ffff:192.0.2.7]:2222")), listen),
            "ssh -p 2222 carol@192.0.2.7"
        );
        assert_eq!(
            ssh_command("carol", None, None, addr("127.0.0.1:2222")),
            "ssh -p 2222 carol@127.0.0.1"
        );
        assert_eq!(
            ssh_command("carol", None, None, listen),
            format!("ssh -p 2222 carol@{}", machine_name())
        );
    }
}
