//! `ListRecordings` and `StreamRecording`: the finished games of
//! [`crate::game::recordings`], encoded as protobuf. The replay itself is the
//! domain player's; this only passes steering in and events out.

use std::pin::Pin;

use dgate_proto::pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};
use tracing::info;

use super::convert::{recording_info, replay_control, replay_event};
use super::game_io::CONNECT_TIMEOUT;
use crate::game::SessionManager;
use crate::game::recordings::{self, RecordingError};

/// Replay events buffered between the player and the transport.
const OUTBOUND_QUEUE: usize = 32;

/// A replay's messages, as tonic sends them.
pub type ReplayStream = Pin<Box<dyn Stream<Item = Result<pb::RecordingEvent, Status>> + Send>>;

pub async fn list(
    manager: &SessionManager,
    r: pb::ListRecordingsRequest,
) -> Result<Response<pb::ListRecordingsResponse>, Status> {
    let entries = manager
        .library()
        .list(&r.username, &r.game_id, r.limit)
        .await;
    Ok(Response::new(pb::ListRecordingsResponse {
        recordings: entries
            .iter()
            .map(|e| recording_info(&e.summary()))
            .collect(),
    }))
}

/// Opens the recording the first message names and plays it, steered by the
/// messages after it, until either side goes.
pub async fn stream(
    manager: &SessionManager,
    mut controls: Streaming<pb::RecordingControl>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response<ReplayStream>, Status> {
    let first = tokio::time::timeout(CONNECT_TIMEOUT, controls.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no open request arrived in time"))??;
    let Some(pb::RecordingControl {
        control: Some(pb::recording_control::Control::Open(open)),
    }) = first
    else {
        return Err(Status::invalid_argument(
            "the first message must be `open` with a recording id",
        ));
    };
    tracing::Span::current().record("recording_id", open.recording_id.as_str());
    let max_idle = (open.max_idle_seconds > 0.0)
        .then(|| recordings::seconds_to_duration(open.max_idle_seconds));
    let library = manager.library();
    let entry = library
        .find(&open.recording_id)
        .await
        .ok_or_else(|| RecordingError::NotFound(open.recording_id.clone()))?;
    let permit = library.admit(peer)?;
    let replay = library.open(entry, max_idle, permit).await?;
    info!(frames = replay.frame_count(), "replaying a recording");
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (steer, steering) = mpsc::channel(8);
    tokio::spawn(async move {
        // A broken or closed control stream ends the replay; the end of the
        // replay (shutdown) lets go of the control stream.
        loop {
            let message = tokio::select! {
                message = controls.message() => message,
                () = steer.closed() => break,
            };
            let Ok(Some(message)) = message else { break };
            if let Some(control) = message.control.and_then(replay_control)
                && steer.send(control).await.is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(recordings::play(
        replay,
        steering,
        tx,
        manager.shutting_down(),
    ));
    let events = tokio_stream::StreamExt::map(ReceiverStream::new(rx), |played| {
        played.map(replay_event).map_err(Status::from)
    });
    Ok(Response::new(Box::pin(events)))
}
