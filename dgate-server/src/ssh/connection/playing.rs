//! Playing over SSH: the game list, then the game at this terminal's size,
//! resizes passed on, until it ends; a vanished client leaves the game
//! waiting the detach grace period for its player.

use super::*;

impl Connection {
    /// The games on offer; logged in, a letter starts (or resumes) one.
    pub(super) async fn games(&mut self, can_play: bool) -> Result<(), End> {
        let games: Vec<_> = self.front.manager.games();
        loop {
            let mut text = format!("{CLEAR}Games on this server\r\n\r\n");
            for (letter, game) in LETTERS.iter().zip(&games) {
                let state = match &game.unavailable {
                    Some(why) => format!("  (unavailable: {why})"),
                    None => String::new(),
                };
                text.push_str(&format!(
                    "  {}) {:<8} {}{state}\r\n",
                    char::from(*letter),
                    game.config.short_name,
                    game.config.name
                ));
            }
            text.push_str(if can_play {
                "\r\nPlay which game? (q goes back) => "
            } else {
                "\r\nLog in (l) or register (r) in the main menu to play. Press q to go back. "
            });
            self.out.write(text).await?;
            let Step::Key(key) = self.next_key(true).await? else {
                continue;
            };
            match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                KeyCode::Char(c) if can_play => {
                    let chosen = LETTERS
                        .iter()
                        .position(|l| char::from(*l) == c)
                        .and_then(|at| games.get(at));
                    if let Some(game) = chosen {
                        let id = game.config.id.clone();
                        self.play(&id).await?;
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    /// Plays `game_id` at this terminal's size (resuming the player's session
    /// of it if there is one) until the game ends.
    async fn play(&mut self, game_id: &str) -> Result<(), End> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        let manager = self.front.manager.clone();
        let (cols, rows) = self.out.size;
        let size = manager.check_size(TermSize::new(cols, rows)).ok();
        let request = StartRequest {
            user_id: i32::try_from(user.id).unwrap_or(0),
            username: user.username.clone(),
            game_id: game_id.to_owned(),
            size,
        };
        let (session, resumed) = match manager.start(request) {
            Ok(session) => (session, false),
            Err(SessionError::AlreadyActive { session_id, .. }) => match manager.get(&session_id) {
                Ok(session) => (session, true),
                Err(e) => {
                    self.message = Some(format!("Cannot resume the game: {e}."));
                    return Ok(());
                }
            },
            Err(e) => {
                self.message = Some(format!("Cannot start the game: {e}."));
                return Ok(());
            }
        };
        let attachment = Attachment {
            lease: session.attach_player(),
            session: Arc::clone(&session),
            manager: manager.clone(),
        };
        let lease = &attachment.lease;
        let mut subscription = session.hub.subscribe();
        if resumed && let Some(size) = size {
            let _ = session.resize(size);
        }
        self.typed.clear();
        self.out.forget_screen();
        let bytes_sent = manager
            .metrics()
            .bytes_sent
            .get_or_create(&Metrics::transport(SSH))
            .clone();
        info!(session_id = %session.info.id, username = %user.username, resumed, "playing over SSH");
        let outcome = loop {
            tokio::select! {
                delivery = subscription.next() => {
                    let Some(delivery) = delivery else { break None };
                    match &delivery {
                        Delivery::Snapshot(s) => {
                            bytes_sent.inc_by(s.data.len() as u64);
                            self.out.write([RESET, &s.data[..]].concat()).await?;
                        }
                        Delivery::Event(event) => match event.as_ref() {
                            HubEvent::Frame(frame) => {
                                bytes_sent.inc_by(frame.data.len() as u64);
                                self.out.write(frame.data.clone()).await?;
                            }
                            HubEvent::Resize { .. } => {}
                            HubEvent::Ended { .. } => break Some("The game has ended.".to_owned()),
                        },
                    }
                }
                event = self.events.recv() => match event {
                    Some(Event::Input(bytes)) => {
                        if session.send_input(bytes).await.is_err() {
                            break Some("The game has ended.".to_owned());
                        }
                    }
                    Some(Event::Resize(cols, rows)) => {
                        self.out.resize(cols, rows);
                        if let Ok(size) = manager.check_size(TermSize::new(cols, rows)) {
                            let _ = session.resize(size);
                        }
                    }
                    Some(Event::Pty { .. } | Event::Shell) => {}
                    Some(Event::Closed) | None => return Err(End::Gone),
                },
                () = lease.taken_over.cancelled() => {
                    break Some("Another connection of yours took over this game.".to_owned());
                }
            }
        };
        drop(attachment);
        self.out.forget_screen();
        self.message = outcome;
        Ok(())
    }
}

/// The player's attachment to a game, however playing ends (the game's end,
/// a takeover, the client gone mid-write): if this connection was still the
/// player, the game waits the detach grace for them and is then hung up.
struct Attachment {
    session: Arc<Session>,
    lease: PlayerLease,
    manager: SessionManager,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if self.session.detach_player(&self.lease) && !self.session.is_ended() {
            info!(session_id = %self.session.info.id, "SSH player gone; the game waits for the detach grace period");
            self.manager.arm_detach_timer(&self.session);
        }
    }
}
