//! The screens dgate shows in a terminal, shared by the `dgate` client and the
//! server's SSH front end: the watch menu, the recent games page, and a game's
//! view (snapshot and frames drawn into any area, cropped or centred, with its
//! status line). Pure state and ratatui drawing; the caller owns the terminal
//! and feeds keys, listings and stream events, all in `dgate-term`'s domain
//! types (no protobuf here); [`basic_colors`] sits between a backend and the
//! terminal so that colours reach it as the game sent them.

pub mod basic_colors;
pub mod chat_pane;
pub mod crop;
pub mod format;
pub mod game_view;
pub mod keys;
pub mod options_editor;
pub mod recent_menu;
pub mod replay_screen;
pub mod watch_menu;
