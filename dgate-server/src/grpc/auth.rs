//! Authentication at the gRPC edge: the `dungeongate.auth.v1.AuthService`,
//! and bearer-token lookup for the other services.

use std::net::IpAddr;
use std::sync::Arc;

use dgate_proto::auth as pb;
use dgate_proto::auth::auth_service_server::AuthService;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use tracing::info;

use super::convert::timestamp;
use crate::accounts::{AccountError, AccountStore, LiveUsers, Logins, User};
use crate::game::SessionManager;

impl From<&User> for pb::User {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone().unwrap_or_default(),
            created_at: Some(timestamp(u.created_at)),
            last_login: u.last_login.map(timestamp),
            is_admin: u.is_admin,
        }
    }
}

/// The bearer token of a request, if it carries one.
pub fn bearer(metadata: &MetadataMap) -> Result<Option<String>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
    Ok(Some(token.trim().to_owned()))
}

/// Token checks for every service, and the live sessions of their users.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Arc<AccountStore>,
    live: Arc<LiveUsers>,
}

impl Authenticator {
    pub fn new(store: Arc<AccountStore>, live: Arc<LiveUsers>) -> Self {
        Self { store, live }
    }

    pub fn store(&self) -> &Arc<AccountStore> {
        &self.store
    }

    /// Live sessions end when their account is banned or its password changes.
    pub fn live(&self) -> &Arc<LiveUsers> {
        &self.live
    }

    /// The caller, when the request carries a token; UNAUTHENTICATED when the
    /// token is wrong or expired.
    pub async fn caller(&self, metadata: &MetadataMap) -> Result<Option<User>, Status> {
        let Some(token) = bearer(metadata)? else {
            return Ok(None);
        };
        let store = Arc::clone(&self.store);
        let user = blocking(move || store.authenticate(&token)).await?;
        Ok(Some(user))
    }

    /// The caller, who must be logged in.
    pub async fn require(&self, metadata: &MetadataMap) -> Result<User, Status> {
        self.caller(metadata).await?.ok_or_else(|| {
            Status::unauthenticated("log in first (`dgate login`): this needs an account")
        })
    }
}

/// Runs account work (SQLite, argon2) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Status::internal("the account task failed"))?
        .map_err(Status::from)
}

#[derive(Debug)]
pub struct AuthServiceImpl {
    auth: Authenticator,
    logins: Arc<Logins>,
    /// For the games' `register` hooks.
    manager: SessionManager,
}

impl AuthServiceImpl {
    /// `logins` is shared with the SSH front end: password work counts
    /// against one set of limits wherever it happens.
    pub fn new(auth: Authenticator, logins: Arc<Logins>, manager: SessionManager) -> Self {
        Self {
            auth,
            logins,
            manager,
        }
    }
}

fn peer(request: &Request<impl Sized>) -> Option<IpAddr> {
    request.remote_addr().map(|a| a.ip())
}

#[tonic::async_trait]
impl AuthService for AuthServiceImpl {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let address = peer(&request);
        let r = request.into_inner();
        let email = (!r.email.is_empty()).then_some(r.email);
        let user = self
            .logins
            .register(&r.username, r.password.to_vec(), email, address, "grpc")
            .await?;
        self.manager.registered(&user.username);
        Ok(Response::new(pb::RegisterResponse {
            user: Some((&user).into()),
        }))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let address = peer(&request);
        let r = request.into_inner();
        let login = self
            .logins
            .login(&r.username, r.password.to_vec(), address, "grpc")
            .await?;
        info!(username = %login.user.username, "logged in");
        Ok(Response::new(pb::LoginResponse {
            token: login.token,
            user: Some((&login.user).into()),
            expires_at: Some(timestamp(login.expires_at)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let token = bearer(request.metadata())?
            .ok_or_else(|| Status::unauthenticated("no token to revoke"))?;
        let store = Arc::clone(self.auth.store());
        blocking(move || store.logout(&token)).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        let address = peer(&request);
        let r = request.into_inner();
        self.logins
            .change_password(
                &user,
                r.old_password.to_vec(),
                r.new_password.to_vec(),
                address,
                "grpc",
            )
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        Ok(Response::new(pb::WhoAmIResponse {
            user: Some((&user).into()),
        }))
    }

    async fn add_public_key(
        &self,
        request: Request<pb::AddPublicKeyRequest>,
    ) -> Result<Response<pb::AddPublicKeyResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        let line = request.into_inner().public_key;
        if line.len() > 16 * 1024 {
            return Err(Status::invalid_argument(
                "a public key line is at most 16 KiB",
            ));
        }
        let store = Arc::clone(self.auth.store());
        let name = user.username.clone();
        let key = blocking(move || store.add_public_key(&name, &line)).await?;
        info!(username = %user.username, fingerprint = %key.fingerprint, "SSH key added");
        Ok(Response::new(pb::AddPublicKeyResponse {
            key: Some(public_key(&key)),
        }))
    }

    async fn list_public_keys(
        &self,
        request: Request<pb::ListPublicKeysRequest>,
    ) -> Result<Response<pb::ListPublicKeysResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        let store = Arc::clone(self.auth.store());
        let keys = blocking(move || store.public_keys(&user.username)).await?;
        Ok(Response::new(pb::ListPublicKeysResponse {
            keys: keys.iter().map(public_key).collect(),
        }))
    }

    async fn remove_public_key(
        &self,
        request: Request<pb::RemovePublicKeyRequest>,
    ) -> Result<Response<pb::RemovePublicKeyResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        let fingerprint = request.into_inner().fingerprint;
        let store = Arc::clone(self.auth.store());
        let name = user.username.clone();
        let shown = fingerprint.clone();
        if !blocking(move || store.remove_public_key(&name, &fingerprint)).await? {
            return Err(Status::not_found(format!("you have no key {shown}")));
        }
        info!(username = %user.username, fingerprint = %shown, "SSH key removed");
        Ok(Response::new(pb::RemovePublicKeyResponse {}))
    }
}

fn public_key(key: &crate::accounts::PublicKeyInfo) -> pb::PublicKey {
    pb::PublicKey {
        fingerprint: key.fingerprint.clone(),
        key: key.key.clone(),
        comment: key.comment.clone(),
        added_at: Some(timestamp(key.added_at)),
    }
}
