//! The spectators and the chat of a game watched on several nodes. The
//! game's node keeps both, as it does for its own viewers, so its rules
//! hold for everyone wherever they watch:
//!
//! - **Admission.** A viewer's node asks the game's node
//!   (`dgate.viewers.<node>`) to admit each spectator of a mirror before it
//!   lets it in: the game's spectator cap and per-address share, the
//!   player's kicks and blocks and a private game are the game's node's to
//!   apply. The game's node registers the spectator as one of that node
//!   ([`Spectator::node`]), and is told when it goes. When the game's node
//!   removes one (a kick), it tells its node (`dgate.removed.<node>`),
//!   whose viewer's stream then ends; when a viewer's node is gone (its
//!   beats stop, or it restarted), its spectators are removed.
//! - **The audience.** The relay publishes who watches, on every node, when
//!   it changed ([`watchers`]); a mirror shows that list beside its own
//!   viewers ([`show`]), so every node shows the same names.
//! - **The chat.** A line said on a viewer's node is said on the game's
//!   node (its limits, mutes and commands); the relay publishes every line
//!   and each mirror repeats them to its viewers. A message to the player
//!   (`m`) is delivered by the game's node too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dgate_proto::cluster as pb;
use futures_util::StreamExt;
use prost::Message as _;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Shared;
use super::wire::{Watcher, error_of, is_session_id, refusal, user_of, viewer_of, viewer_reply};
use crate::accounts::User;
use crate::broadcast::spectators::RegistryVersion;
use crate::broadcast::{Farewell, RegistryFull, Spectator};
use crate::game::{Session, SessionError, SessionManager, messages};
use crate::viewing::chat::{self, Said};
use crate::viewing::may_watch;

/// How long a viewer's node waits for the game's node to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the game's node looks for viewers' nodes that are gone.
const SWEEP: Duration = Duration::from_secs(1);
/// A viewer's node not heard from for this long (its beats stop) is asked
/// whether it is still there.
const GONE: Duration = Duration::from_secs(5);

/// Where node `node` answers admissions, departures and chat lines.
pub fn viewers_subject(node: &str) -> String {
    format!("dgate.viewers.{node}")
}

/// Where node `node` hears that the game's node removed one of its viewers.
pub fn removed_subject(node: &str) -> String {
    format!("dgate.removed.{node}")
}

/// A spectator the game's node registered for another node.
#[derive(Debug)]
pub struct Guest {
    session: Arc<Session>,
    node: String,
    /// The node's run when it was admitted, once known from its beats.
    boot: Option<String>,
    since: Instant,
}

/// A spectator of a mirror here, as the game's node registered it.
#[derive(Debug, Clone)]
pub struct Visit {
    session: Arc<Session>,
    /// Its registration here (perhaps not in the mirror's registry yet).
    spectator: Arc<Spectator>,
}

/// The key that stands for a registration in audience lists: a hash of
/// its id, which is a credential.
fn key_of(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The most spectators an audience message lists (about 100 bytes each:
/// NATS's default message limit is 1 MiB). Past it, the earliest comers
/// are listed, and the others' nodes show only their own.
pub const MAX_LISTED: usize = 5_000;

/// Who watches, as the relay publishes it: the registrations (the first
/// [`MAX_LISTED`]), with the node each watches on.
pub fn watchers(own_node: &str, registry: &RegistryVersion) -> Vec<Watcher> {
    registry
        .in_join_order()
        .iter()
        .take(MAX_LISTED)
        .map(|s| Watcher {
            key: key_of(&s.id),
            user_id: s.user_id,
            username: s.username.clone(),
            joined_at: s.joined_at,
            node_id: s.node.clone().unwrap_or_else(|| own_node.to_owned()),
        })
        .collect()
}

/// Shows the game's node's list in a mirror: everyone but this node's own
/// viewers (they are in the mirror already).
pub fn show(own_node: &str, session: &Session, watchers: Vec<Watcher>) {
    let shadows = watchers
        .into_iter()
        .filter(|w| w.node_id != own_node)
        .map(|w| {
            Arc::new(Spectator::elsewhere(
                format!("shadow-{}", w.key),
                w.user_id,
                &w.username,
                w.joined_at,
                w.node_id,
                None,
            ))
        })
        .collect();
    session.spectators.replace_shadows(shadows);
}

// ---- The game's node ----

/// Answers other nodes' admissions, departures and chat lines for this
/// node's games, and removes the spectators of nodes that are gone, until
/// the server stops.
pub async fn answer(
    shared: Arc<Shared>,
    manager: SessionManager,
    mut requests: async_nats::Subscriber,
    stop: CancellationToken,
) {
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            message = requests.next() => message,
            _ = sweep.tick() => {
                sweep_guests(&shared);
                continue;
            }
            () = stop.cancelled() => break,
        };
        let Some(message) = message else { break };
        let Some(reply_to) = message.reply else {
            shared.metrics.malformed_messages.inc();
            continue;
        };
        let request = match pb::ViewerRequest::decode(message.payload) {
            Ok(r) if is_session_id(&r.session_id) && is_session_id(&r.node_id) => r,
            _ => {
                shared.metrics.malformed_messages.inc();
                continue;
            }
        };
        // A message is delivered to the game's mail spool (a file):
        // answered from a task of its own.
        if let Some(pb::viewer_request::Request::Message(message)) = request.request {
            let (shared, manager) = (Arc::clone(&shared), manager.clone());
            tokio::spawn(async move {
                let Some(answer) = deliver(&manager, &request.session_id, message).await else {
                    shared.metrics.malformed_messages.inc();
                    return;
                };
                let _ = shared.client.publish(reply_to, answer).await;
            });
            continue;
        }
        let Some(answer) = handle(&shared, &manager, request) else {
            shared.metrics.malformed_messages.inc();
            continue;
        };
        if let Err(e) = shared.client.publish(reply_to, answer).await {
            debug!(error = %e, "cannot answer a viewer request");
        }
    }
}

/// A viewer's message to the player of this node's game; `None` for a
/// malformed request.
async fn deliver(
    manager: &SessionManager,
    session_id: &str,
    message: pb::ViewerSay,
) -> Option<Bytes> {
    use pb::viewer_reply::Outcome;
    let Ok(Some(sender)) = user_of(message.viewer.as_ref()?) else {
        return None;
    };
    let sent = match manager.get_local(session_id) {
        Ok(session) => messages::send_here(manager, &session, &sender, message.text).await,
        Err(e) => Err(e),
    };
    Some(viewer_reply(match sent {
        Ok(spooled) => Outcome::Done(spooled),
        Err(e) => Outcome::Refused(refusal(&e)),
    }))
}

/// One request's answer; `None` for a malformed one.
fn handle(
    shared: &Arc<Shared>,
    manager: &SessionManager,
    request: pb::ViewerRequest,
) -> Option<Bytes> {
    use pb::viewer_reply::Outcome;
    use pb::viewer_request::Request;
    let session_id = request.session_id;
    let outcome = match request.request? {
        Request::Join(join) => {
            let who = user_of(join.viewer.as_ref()?).ok()?;
            let address = match join.address.as_str() {
                "" => None,
                text => Some(text.parse::<IpAddr>().ok()?),
            };
            // The viewer's node names the registration (a random id), so
            // that it can let it go even without the answer.
            if !is_session_id(&join.registration)
                || shared.guests().contains_key(&join.registration)
            {
                return None;
            }
            match admit_here(
                shared,
                manager,
                &session_id,
                &request.node_id,
                join.registration,
                who.as_ref(),
                address,
            ) {
                Ok(registration) => Outcome::Registration(registration),
                Err(e) => Outcome::Refused(refusal(&e)),
            }
        }
        Request::Leave(leave) => {
            let mut guests = shared.guests();
            let theirs = guests
                .get(&leave.registration)
                .is_some_and(|g| g.session.info.id == session_id && g.node == request.node_id);
            let guest = if theirs {
                guests.remove(&leave.registration)
            } else {
                None
            };
            drop(guests);
            if let Some(guest) = guest {
                guest.session.spectators.remove(&leave.registration);
            }
            Outcome::Done(true)
        }
        // Answered by `answer` itself.
        Request::Message(_) => return None,
        Request::Say(say) => {
            let who = user_of(say.viewer.as_ref()?).ok()?;
            let said = manager
                .get_local(&session_id)
                .and_then(|session| chat::say_here(manager, &session, who.as_ref(), &say.text));
            match said {
                Ok(Said::Posted) => Outcome::Done(true),
                Ok(Said::Answer(text)) => Outcome::Answer(text),
                Err(e) => Outcome::Refused(refusal(&e)),
            }
        }
    };
    Some(viewer_reply(outcome))
}

/// Admits a spectator of node `node` to this node's game, as
/// `viewing::watch::register` admits a local one: its registration.
fn admit_here(
    shared: &Arc<Shared>,
    manager: &SessionManager,
    session_id: &str,
    node: &str,
    id: String,
    who: Option<&User>,
    address: Option<IpAddr>,
) -> Result<String, SessionError> {
    if !manager.config().session_management.spectating.enabled {
        return Err(SessionError::SpectatingDisabled);
    }
    may_watch(manager.config(), who.is_some())?;
    let session = manager.get_local(session_id)?;
    if let Some(why) = session.audience().refuses(who) {
        return Err(SessionError::NotAllowed(why));
    }
    let (user_id, username) = match who {
        Some(user) => (i32::try_from(user.id).unwrap_or(0), user.username.as_str()),
        None => (0, ""),
    };
    let spectator = Arc::new(Spectator::elsewhere(
        id.clone(),
        user_id,
        username,
        SystemTime::now(),
        node.to_owned(),
        address,
    ));
    // Removed here (a kick, a block): its node ends its stream.
    let (told, to, registration) = (Arc::clone(shared), removed_subject(node), id.clone());
    let notice = Bytes::from(
        pb::ViewerRemoved {
            session_id: session_id.to_owned(),
            registration: id.clone(),
        }
        .encode_to_vec(),
    );
    let runtime = tokio::runtime::Handle::current();
    spectator.on_end(Farewell::new(move || {
        if told.guests().remove(&registration).is_some() {
            runtime.spawn(async move {
                let _ = told.client.publish(to, notice).await;
            });
        }
    }));
    shared.guests().insert(
        id.clone(),
        Guest {
            session: Arc::clone(&session),
            node: node.to_owned(),
            boot: shared.directory.boot_of(node),
            since: Instant::now(),
        },
    );
    if let Err(full) = session.spectators.add(spectator) {
        shared.guests().remove(&id);
        if matches!(full, RegistryFull::Address { .. }) {
            manager
                .metrics()
                .refused(crate::metrics::Refusal::SpectatorsPerAddress);
        }
        return Err(full.into());
    }
    info!(session_id, node, spectator_username = %username,
          spectator_count = session.spectators.len(), "spectator of another node added");
    Ok(id)
}

/// Removes the spectators of nodes that restarted (a new run's beats), or
/// whose games ended; a node silent for [`GONE`] is asked whether it is
/// still there ([`probe`]), and its spectators go only when NATS answers
/// that nobody takes its requests (its connection is gone). A node that is
/// frozen, or a NATS that is stalled, keeps its spectators: they watch on
/// when it runs again. Each removal is told to its node as a kick is (its
/// farewell), so that a viewer never keeps watching unregistered here.
fn sweep_guests(shared: &Arc<Shared>) {
    let mut doomed: Vec<(String, Arc<Session>)> = Vec::new();
    let mut silent: Vec<String> = Vec::new();
    {
        let mut guests = shared.guests();
        for (id, guest) in guests.iter_mut() {
            let boot = shared.directory.boot_of(&guest.node);
            if guest.boot.is_none() {
                guest.boot.clone_from(&boot);
            }
            let restarted = matches!((&guest.boot, &boot), (Some(then), Some(now)) if then != now);
            if restarted || guest.session.is_ended() {
                doomed.push((id.clone(), Arc::clone(&guest.session)));
            } else if boot.is_none()
                && guest.since.elapsed() >= GONE
                && !silent.contains(&guest.node)
            {
                silent.push(guest.node.clone());
            }
        }
    }
    for (id, session) in doomed {
        if session.spectators.remove(&id) {
            debug!(session_id = %session.info.id, "a restarted node's spectator removed");
        }
        shared.guests().remove(&id);
    }
    for node in silent {
        if shared.probing().insert(node.clone()) {
            tokio::spawn(probe(Arc::clone(shared), node));
        }
    }
}

/// Asks silent node `node` for a sign of life (a departure nobody made);
/// removes its spectators if NATS says it has no connection.
async fn probe(shared: Arc<Shared>, node: String) {
    let nobody = pb::viewer_request::Request::Leave(pb::ViewerLeave {
        registration: String::new(),
    });
    let gone = matches!(
        request(&shared, &node, "probe", nobody).await,
        Err(Unanswered::NoResponders)
    );
    if gone {
        let theirs: Vec<(String, Arc<Session>)> = shared
            .guests()
            .iter()
            .filter(|(_, g)| g.node == node)
            .map(|(id, g)| (id.clone(), Arc::clone(&g.session)))
            .collect();
        info!(%node, spectators = theirs.len(), "a node is gone: its spectators are let go");
        for (id, session) in theirs {
            session.spectators.remove(&id);
            shared.guests().remove(&id);
        }
    }
    shared.probing().remove(&node);
}

// ---- A viewer's node ----

/// Asks the game's node of `session` (a mirror here) to admit `who`, then
/// binds the answer to `spectator`: when it ends here, the game's node is
/// told; when the game's node removes it, it ends here.
pub async fn admit(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    spectator: &Arc<Spectator>,
    who: Option<&User>,
    address: Option<IpAddr>,
) -> Result<(), SessionError> {
    use pb::viewer_reply::Outcome;
    let origin = session.origin().ok_or(SessionError::Ended)?;
    let registration = uuid::Uuid::new_v4().simple().to_string();
    // Until it is bound to the spectator: whatever happens to the answer
    // (none in time, nonsense, this future dropped), the game's node is
    // told to let the registration go.
    let mut pending = Pending {
        leave: Some((
            Arc::clone(shared),
            origin.to_owned(),
            session.info.id.clone(),
            registration.clone(),
        )),
    };
    let join = pb::viewer_request::Request::Join(pb::ViewerJoin {
        viewer: Some(viewer_of(who)),
        address: address.map(|a| a.to_string()).unwrap_or_default(),
        registration: registration.clone(),
    });
    match ask(shared, origin, &session.info.id, join).await? {
        Outcome::Registration(r) if r == registration => {}
        Outcome::Refused(refused) => {
            pending.leave = None;
            return Err(error_of(&session.info.id, refused));
        }
        _ => {
            return Err(SessionError::Unreachable(
                "an answer that makes no sense".into(),
            ));
        }
    }
    shared.visits().insert(
        registration,
        Visit {
            session: Arc::clone(session),
            spectator: Arc::clone(spectator),
        },
    );
    if let Some((goodbye, origin, session_id, registration)) = pending.leave.take() {
        spectator.on_end(Farewell::new(move || {
            goodbye.visits().remove(&registration);
            leave(goodbye, origin, session_id, registration);
        }));
    }
    Ok(())
}

/// An admission not bound yet: dropped, it lets the registration go.
struct Pending {
    leave: Option<(Arc<Shared>, String, String, String)>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((shared, origin, session_id, registration)) = self.leave.take() {
            leave(shared, origin, session_id, registration);
        }
    }
}

/// Tells the game's node that a spectator of its game left here (in the
/// background; tried for about 15 s).
fn leave(shared: Arc<Shared>, origin: String, session_id: String, registration: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let request = pb::viewer_request::Request::Leave(pb::ViewerLeave { registration });
        let mut pause = Duration::from_millis(250);
        for _ in 0..6 {
            if ask(&shared, &origin, &session_id, request.clone())
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        debug!(%session_id, node = %origin, "the game's node was not told a spectator left");
    });
}

/// Says `text` as `who` in the chat of `session` (a mirror here), on the
/// game's node.
pub async fn say(
    shared: &Arc<Shared>,
    session: &Session,
    who: &User,
    text: &str,
) -> Result<Said, SessionError> {
    use pb::viewer_reply::Outcome;
    let origin = session.origin().ok_or(SessionError::Ended)?;
    let say = pb::viewer_request::Request::Say(pb::ViewerSay {
        viewer: Some(viewer_of(Some(who))),
        text: text.chars().take(chat::MAX_CHARS * 2).collect(),
    });
    match ask(shared, origin, &session.info.id, say).await? {
        Outcome::Done(_) => Ok(Said::Posted),
        Outcome::Answer(text) => Ok(Said::Answer(
            text.chars().filter(|c| !c.is_control()).take(500).collect(),
        )),
        Outcome::Refused(refused) => Err(error_of(&session.info.id, refused)),
        Outcome::Registration(_) => Err(SessionError::Unreachable(
            "an answer that makes no sense".into(),
        )),
    }
}

/// Sends `text` from `who` to the player of `session` (a mirror here),
/// delivered by the game's node: whether it went to the game's spool too.
pub async fn message(
    shared: &Arc<Shared>,
    session: &Session,
    who: &User,
    text: &str,
) -> Result<bool, SessionError> {
    use pb::viewer_reply::Outcome;
    let origin = session.origin().ok_or(SessionError::Ended)?;
    let message = pb::viewer_request::Request::Message(pb::ViewerSay {
        viewer: Some(viewer_of(Some(who))),
        text: text.to_owned(),
    });
    match ask(shared, origin, &session.info.id, message).await? {
        Outcome::Done(spooled) => Ok(spooled),
        Outcome::Refused(refused) => Err(error_of(&session.info.id, refused)),
        _ => Err(SessionError::Unreachable(
            "an answer that makes no sense".into(),
        )),
    }
}

/// One request to the game's node and its answer.
async fn ask(
    shared: &Shared,
    origin: &str,
    session_id: &str,
    asked: pb::viewer_request::Request,
) -> Result<pb::viewer_reply::Outcome, SessionError> {
    request(shared, origin, session_id, asked)
        .await
        .map_err(|unanswered| {
            SessionError::Unreachable(match unanswered {
                Unanswered::NoResponders => format!("node {origin} is not connected"),
                Unanswered::Silent => format!("node {origin} was silent"),
                Unanswered::Failed(why) => format!("node {origin}: {why}"),
            })
        })
}

/// Why a request to another node got no usable answer.
enum Unanswered {
    /// NATS says nobody takes the node's requests: its connection is gone.
    NoResponders,
    /// No answer within [`ASK_TIMEOUT`] (a frozen node, a stalled NATS).
    Silent,
    /// NATS failed, or the answer was nonsense.
    Failed(String),
}

async fn request(
    shared: &Shared,
    node: &str,
    session_id: &str,
    request: pb::viewer_request::Request,
) -> Result<pb::viewer_reply::Outcome, Unanswered> {
    let payload = pb::ViewerRequest {
        session_id: session_id.to_owned(),
        node_id: shared.node_id.clone(),
        request: Some(request),
    }
    .encode_to_vec();
    let asked = shared
        .client
        .request(viewers_subject(node), Bytes::from(payload));
    let answer = match tokio::time::timeout(ASK_TIMEOUT, asked).await {
        Err(_) => return Err(Unanswered::Silent),
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(Unanswered::NoResponders);
        }
        Ok(Err(e)) => return Err(Unanswered::Failed(e.to_string())),
        Ok(Ok(answer)) => answer,
    };
    pb::ViewerReply::decode(answer.payload)
        .ok()
        .and_then(|r| r.outcome)
        .ok_or_else(|| {
            shared.metrics.malformed_messages.inc();
            Unanswered::Failed("an answer that is not one".into())
        })
}

/// Ends this node's viewers that the game's node removed, until the server
/// stops.
pub async fn hear_removals(
    shared: Arc<Shared>,
    mut notices: async_nats::Subscriber,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = notices.next() => message,
            () = stop.cancelled() => break,
        };
        let Some(message) = message else { break };
        let Ok(notice) = pb::ViewerRemoved::decode(message.payload) else {
            shared.metrics.malformed_messages.inc();
            continue;
        };
        let visit = shared.visits().get(&notice.registration).cloned();
        if let Some(visit) = visit.filter(|v| v.session.info.id == notice.session_id) {
            // Not in the registry yet (the notice overtook the add): ended
            // all the same, so its stream ends as soon as it starts.
            if !visit.session.spectators.remove(&visit.spectator.id) {
                visit.spectator.end();
            }
            info!(session_id = %notice.session_id, "the game's node removed a spectator here");
        }
    }
}

impl Shared {
    pub(super) fn guests(&self) -> std::sync::MutexGuard<'_, HashMap<String, Guest>> {
        self.guests.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn visits(&self) -> std::sync::MutexGuard<'_, HashMap<String, Visit>> {
        self.visits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Silent nodes being asked whether they are still there.
    fn probing(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.probing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_keys_do_not_give_registrations_away() {
        let key = key_of("0123456789abcdef");
        assert_eq!(key.len(), 24);
        assert!(!key.contains("0123456789abcdef"));
        assert_eq!(key, key_of("0123456789abcdef"));
    }
}
