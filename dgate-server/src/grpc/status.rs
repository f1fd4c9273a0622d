//! Domain errors as gRPC status codes: the only place they are chosen.

use tonic::Status;
use tracing::warn;

use crate::accounts::{AccountError, LoginError};
use crate::game::SessionError;
use crate::game::rc_files::RcError;
use crate::game::recordings::RecordingError;

impl From<SessionError> for Status {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::NotFound(_) | SessionError::UnknownGame(_) => Status::not_found(message),
            SessionError::GameUnavailable { .. }
            | SessionError::Ended
            | SessionError::SpectatingDisabled
            | SessionError::Spawn { .. }
            | SessionError::Elsewhere { .. } => Status::failed_precondition(message),
            SessionError::AlreadyActive { .. } | SessionError::AlreadyBound => {
                Status::already_exists(message)
            }
            SessionError::Invalid { .. } => Status::invalid_argument(message),
            SessionError::LoginRequired(_) => Status::unauthenticated(message),
            SessionError::NotRegistered
            | SessionError::NotYours { .. }
            | SessionError::NotAllowed(_) => Status::permission_denied(message),
            SessionError::SpectatorsFull(_) | SessionError::Limit(_) => {
                Status::resource_exhausted(message)
            }
            SessionError::ShuttingDown | SessionError::Unreachable(_) => {
                Status::unavailable(message)
            }
        }
    }
}

impl From<AccountError> for Status {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        match e {
            AccountError::Invalid { .. } => Status::invalid_argument(message),
            AccountError::UsernameTaken(_) | AccountError::KeyTaken => {
                Status::already_exists(message)
            }
            AccountError::TooManyKeys => Status::resource_exhausted(message),
            AccountError::NoSuchUser(_) => Status::not_found(message),
            AccountError::BadCredentials | AccountError::BadToken => {
                Status::unauthenticated(message)
            }
            AccountError::Banned(_) => Status::permission_denied(message),
            AccountError::Unavailable(_) => {
                warn!(error = %message, "shared accounts unavailable");
                Status::unavailable(message)
            }
            AccountError::Database(_)
            | AccountError::Io(_)
            | AccountError::Hashing(_)
            | AccountError::Random(_) => {
                warn!(error = %message, "account store failure");
                Status::internal("the account store failed; try again")
            }
        }
    }
}

impl From<LoginError> for Status {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::TooManyFailures { .. }
            | LoginError::TooManyRegistrations { .. }
            | LoginError::Busy => Status::resource_exhausted(e.to_string()),
            LoginError::Account(e) => e.into(),
        }
    }
}

impl From<RecordingError> for Status {
    fn from(e: RecordingError) -> Self {
        let message = e.to_string();
        match e {
            RecordingError::NotFound(_) | RecordingError::Unopenable(_) => {
                Status::not_found(message)
            }
            RecordingError::Unreadable(_) | RecordingError::Damaged(_) => {
                Status::data_loss(message)
            }
            RecordingError::TooLarge | RecordingError::TooManyReplays(_) => {
                Status::resource_exhausted(message)
            }
            RecordingError::ShuttingDown => Status::unavailable(message),
        }
    }
}

impl From<RcError> for Status {
    fn from(e: RcError) -> Self {
        let message = e.to_string();
        match e {
            RcError::NoSuchGame(_) => Status::not_found(message),
            RcError::NoRcFile(_) => Status::failed_precondition(message),
            RcError::TooLarge { .. } => Status::invalid_argument(message),
            RcError::RunAs(_) | RcError::Io { .. } => {
                warn!(error = %message, "options file failure");
                Status::internal("the server cannot open your options file; tell its operator")
            }
        }
    }
}
