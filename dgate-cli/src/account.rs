//! `dgate register`, `login`, `logout`, `passwd` and `whoami`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use dgate_proto::auth as pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use tonic::transport::Channel;

use crate::tokens::{self, Saved};

pub type Client = AuthServiceClient<Channel>;

/// Where passwords come from: the first lines of stdin (`--password-stdin`,
/// or whenever stdin is not a terminal), or prompts that do not echo.
pub struct Passwords {
    from_stdin: bool,
}

impl Passwords {
    pub fn new(password_stdin: bool) -> Self {
        Self {
            from_stdin: password_stdin || !std::io::stdin().is_terminal(),
        }
    }

    /// One password; `new` checks its length and, on a terminal, asks a
    /// second time.
    fn read(&self, prompt: &str, new: bool) -> Result<Vec<u8>> {
        if self.from_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading a password from stdin")?;
            if line.is_empty() {
                bail!("no password on stdin");
            }
            let password = line.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
            if new {
                check_length(&password)?;
            }
            return Ok(password);
        }
        let password = rpassword::prompt_password(prompt).context("reading the password")?;
        if new {
            check_length(password.as_bytes())?;
        }
        if new && rpassword::prompt_password("Again: ").context("reading the password")? != password
        {
            bail!("the passwords differ");
        }
        Ok(password.into_bytes())
    }
}

/// A new password's length, checked before it is typed a second time.
fn check_length(password: &[u8]) -> Result<()> {
    let allowed = dgate_proto::PASSWORD_BYTES;
    if !allowed.contains(&password.len()) {
        bail!(
            "a password must be {} to {} bytes long (this one is {})",
            allowed.start(),
            allowed.end(),
            password.len()
        );
    }
    Ok(())
}

/// The name from `--username`, or asked for on the terminal.
fn username(given: Option<String>) -> Result<String> {
    if let Some(name) = given {
        return Ok(name);
    }
    if !std::io::stdin().is_terminal() {
        bail!("--username is needed when stdin is not a terminal");
    }
    print!("Username: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// A request that carries this server's saved token.
pub fn authed<T>(server: &str, message: T) -> Result<tonic::Request<T>> {
    let saved = tokens::get(server)?
        .with_context(|| format!("not logged in to {server}: run `dgate login`"))?;
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {}", saved.token)
        .parse()
        .context("the saved token is not valid text; run `dgate login` again")?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn status(e: tonic::Status) -> anyhow::Error {
    match e.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!("{} (run `dgate login`)", e.message()),
        _ => anyhow::anyhow!("{}", e.message()),
    }
}

async fn login_as(client: &mut Client, server: &str, name: &str, password: Vec<u8>) -> Result<()> {
    let reply = client
        .login(pb::LoginRequest {
            username: name.to_owned(),
            password: password.into(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?
        .into_inner();
    let user = reply.user.context("the server sent no user")?;
    tokens::save(
        server,
        Saved {
            username: user.username.clone(),
            token: reply.token,
        },
    )?;
    println!("logged in to {server} as {}", user.username);
    Ok(())
}

pub async fn register(
    client: &mut Client,
    server: &str,
    name: Option<String>,
    email: Option<String>,
    passwords: Passwords,
) -> Result<()> {
    let name = username(name)?;
    let password = passwords.read("Password: ", true)?;
    client
        .register(pb::RegisterRequest {
            username: name.clone(),
            password: password.clone().into(),
            email: email.unwrap_or_default(),
        })
        .await
        .map_err(status)?;
    println!("registered {name}");
    login_as(client, server, &name, password).await
}

pub async fn login(
    client: &mut Client,
    server: &str,
    name: Option<String>,
    passwords: Passwords,
) -> Result<()> {
    let name = username(name)?;
    let password = passwords.read("Password: ", false)?;
    login_as(client, server, &name, password).await
}

pub async fn logout(client: &mut Client, server: &str) -> Result<()> {
    let request = authed(server, pb::LogoutRequest {})?;
    // The local token goes even if the server no longer knows it.
    let revoked = client.logout(request).await;
    tokens::remove(server)?;
    match revoked {
        Ok(_) => println!("logged out of {server}"),
        Err(e) => println!(
            "logged out of {server} (the server had already forgotten the token: {})",
            e.message()
        ),
    }
    Ok(())
}

pub async fn passwd(client: &mut Client, server: &str, passwords: Passwords) -> Result<()> {
    let old = passwords.read("Current password: ", false)?;
    let new = passwords.read("New password: ", true)?;
    let request = authed(
        server,
        pb::ChangePasswordRequest {
            old_password: old.into(),
            new_password: new.clone().into(),
        },
    )?;
    client.change_password(request).await.map_err(status)?;
    // Changing the password revoked every token: log in again with the new one.
    let name = tokens::get(server)?
        .map(|s| s.username)
        .context("no saved username")?;
    println!("password changed");
    login_as(client, server, &name, new).await
}

pub async fn whoami(client: &mut Client, server: &str) -> Result<()> {
    let user = client
        .who_am_i(authed(server, pb::WhoAmIRequest {})?)
        .await
        .map_err(status)?
        .into_inner()
        .user
        .context("the server sent no user")?;
    println!(
        "{}{}",
        user.username,
        if user.is_admin { " (admin)" } else { "" }
    );
    Ok(())
}

/// `dgate keys add FILE`: registers an SSH public key for `ssh NAME@host`.
pub async fn add_key(client: &mut Client, server: &str, file: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "reading {} (a public key file like ~/.ssh/id_ed25519.pub)",
            file.display()
        )
    })?;
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .with_context(|| format!("{} has no key line", file.display()))?;
    if line.contains("PRIVATE KEY") {
        bail!("{} is a private key: give the .pub file", file.display());
    }
    let request = pb::AddPublicKeyRequest {
        public_key: line.to_owned(),
    };
    let key = client
        .add_public_key(authed(server, request)?)
        .await
        .map_err(status)?
        .into_inner()
        .key
        .context("the server sent no key")?;
    println!("added {} {}", key.fingerprint, key.comment);
    Ok(())
}

pub async fn list_keys(client: &mut Client, server: &str) -> Result<()> {
    let keys = client
        .list_public_keys(authed(server, pb::ListPublicKeysRequest {})?)
        .await
        .map_err(status)?
        .into_inner()
        .keys;
    if keys.is_empty() {
        println!("no SSH keys (dgate keys add ~/.ssh/id_ed25519.pub)");
    }
    for key in keys {
        println!("{} {}", key.fingerprint, key.comment);
    }
    Ok(())
}

pub async fn remove_key(client: &mut Client, server: &str, fingerprint: &str) -> Result<()> {
    let request = pb::RemovePublicKeyRequest {
        fingerprint: fingerprint.to_owned(),
    };
    client
        .remove_public_key(authed(server, request)?)
        .await
        .map_err(status)?;
    println!("removed {fingerprint}");
    Ok(())
}
