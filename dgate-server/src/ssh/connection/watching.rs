//! Watching over SSH: the watch menu (the dgate client's), one game (its own
//! bytes passed through when it fits, a cropped view drawn when it does not),
//! and the recent games with their replays.

use super::*;

impl Connection {
    /// The watch menu (the same as the dgate client's), until `q`.
    pub(super) async fn watch_menu(&mut self) -> Result<(), End> {
        let (cols, rows) = self.out.size;
        let mut menu = WatchMenu::new(cols, rows);
        menu.update(self.session_rows());
        menu.message = self.message.take();
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.out.draw(|f| menu.render(f, f.area())).await?;
            tokio::select! {
                step = self.next_key(true) => match step? {
                    Step::Redraw => {
                        let (cols, rows) = self.out.size;
                        menu.resize(cols, rows);
                    }
                    Step::Key(key) => match menu.handle_key(key) {
                        MenuAction::None => {}
                        MenuAction::Quit => return Ok(()),
                        MenuAction::Watch(id) => {
                            menu.message = self.watch(&id).await?;
                            self.out.forget_screen();
                            let (cols, rows) = self.out.size;
                            menu.resize(cols, rows);
                            menu.update(self.session_rows());
                        }
                        MenuAction::MultiView(_) => {
                            menu.message = Some(
                                "Several games at once: that is the dgate client's multi-view.".into(),
                            );
                        }
                        MenuAction::Recent => {
                            menu.message = self.recent().await?;
                            self.out.forget_screen();
                            let (cols, rows) = self.out.size;
                            menu.resize(cols, rows);
                        }
                    },
                },
                _ = refresh.tick() => menu.update(self.session_rows()),
            }
        }
    }

    /// The recent games page, and replays from it, until `q`.
    async fn recent(&mut self) -> Result<Option<String>, End> {
        let directory = self.front.manager.recordings_directory();
        let entries = tokio::task::spawn_blocking(move || recordings::list(&directory, "", "", 0))
            .await
            .unwrap_or_default();
        let mut menu = RecentMenu::new(entries.iter().map(Entry::info).collect(), self.out.size.1);
        self.out.forget_screen();
        loop {
            self.out.draw(|f| menu.render(f, f.area())).await?;
            match self.next_key(true).await? {
                Step::Redraw => menu.resize(self.out.size.1),
                Step::Key(key) => match menu.handle_key(key) {
                    RecentAction::None => {}
                    RecentAction::Back => return Ok(None),
                    RecentAction::Replay(id) => {
                        if let Some(entry) = entries.iter().find(|e| e.id == id) {
                            menu.message = self.replay(entry.clone()).await?;
                            self.out.forget_screen();
                        }
                    }
                },
            }
        }
    }

    /// Plays one recording here: the same screen and keys as `dgate replay`.
    async fn replay(&mut self, entry: Entry) -> Result<Option<String>, End> {
        let title = format!("{} · {}", entry.meta.username, entry.meta.game_id);
        let opened = tokio::task::spawn_blocking(move || entry.open(Some(REPLAY_MAX_IDLE))).await;
        let recording = match opened {
            Ok(Ok(recording)) => recording,
            Ok(Err(status)) => return Ok(Some(format!("Cannot replay: {}", status.message()))),
            Err(e) => return Ok(Some(format!("Cannot replay: {e}"))),
        };
        let mut replay = LocalReplay::new(recording, title);
        self.out.forget_screen();
        loop {
            let progress = replay.tick();
            self.out
                .draw(|f| replay.screen.render(f, &progress))
                .await?;
            tokio::select! {
                step = self.next_key(false) => {
                    if let Step::Key(key) = step?
                        && replay.key(key)
                    {
                        return Ok(None);
                    }
                }
                () = tokio::time::sleep(replay.wait(REPLAY_TICK)) => {}
            }
        }
    }

    fn session_rows(&self) -> Vec<SessionRow> {
        let now = SystemTime::now();
        self.front
            .manager
            .list()
            .iter()
            .map(|s| SessionRow::from_session(&pb::GameSession::from(s.as_ref()), now))
            .collect()
    }

    /// Watches one game until `q`, Ctrl+C or its end; returns a line for the menu.
    async fn watch(&mut self, session_id: &str) -> Result<Option<String>, End> {
        let manager = self.front.manager.clone();
        let (user_id, username) = match &self.user {
            Some(user) => (i32::try_from(user.id).unwrap_or(0), user.username.clone()),
            None => (0, String::new()),
        };
        let (session, spectator) = match manager.add_spectator(session_id, user_id, &username) {
            Ok(registered) => registered,
            Err(e) => return Ok(Some(format!("Cannot watch: {e}."))),
        };
        spectator.bind();
        let metrics = Arc::clone(manager.metrics());
        let connections = metrics
            .spectator_connections_active
            .get_or_create(&Metrics::transport(SSH))
            .clone();
        connections.inc();
        let _registration = Registration {
            session: Arc::clone(&session),
            spectator: Arc::clone(&spectator),
            connections,
        };
        let bytes_sent = metrics
            .bytes_sent
            .get_or_create(&Metrics::transport(SSH))
            .clone();
        metrics
            .spectator_sessions
            .get_or_create(&Metrics::game(&session.info.game_id))
            .inc();
        let mut subscription = session.hub.subscribe();
        let row =
            SessionRow::from_session(&pb::GameSession::from(session.as_ref()), SystemTime::now());
        let mut view = GameView::new(row);
        // Raw passthrough while the game fits this terminal: the hub's own
        // snapshots and frames, and no screen model kept here (frames are not
        // parsed per watcher). A cropped view otherwise, drawn from this
        // connection's model. `None` until the next snapshot decides.
        let mut passthrough: Option<bool> = None;
        // A snapshot this connection asked for (to redraw), not a resync.
        let mut requested = false;
        let outcome = loop {
            tokio::select! {
                delivery = subscription.next() => {
                    let Some(delivery) = delivery else { break None };
                    let mut redraw = false;
                    let frame = match &delivery {
                        Delivery::Event(event) => match event.as_ref() {
                            HubEvent::Frame(frame) => Some(frame),
                            _ => None,
                        },
                        Delivery::Snapshot(s) => {
                            redraw = std::mem::take(&mut requested);
                            if s.reason == SnapshotReason::Resync && !redraw {
                                metrics.spectator_resyncs.inc();
                                metrics.spectator_frames_dropped.inc_by(s.frames_skipped);
                            }
                            None
                        }
                    };
                    if let (Some(true), Some(frame)) = (passthrough, frame) {
                        metrics.spectator_frames_sent.inc();
                        bytes_sent.inc_by(frame.data.len() as u64);
                        self.out.write(frame.data.clone()).await?;
                        continue;
                    }
                    let mut response = delivery_message(&session.info.id, &delivery).response;
                    if let (true, Some(pb::game_io_response::Response::Snapshot(s))) = (redraw, &mut response) {
                        // Asked for, not fallen behind: the status line says nothing.
                        s.reason = pb::SnapshotReason::Join as i32;
                    }
                    match response.map(|r| view.apply(r)) {
                        Some(Update::Ended(why)) => break Some(why),
                        _ if matches!(&delivery, Delivery::Event(e) if matches!(**e, HubEvent::Resize { .. })) => {
                            // Redraw at the new size from a snapshot (the status
                            // line moves, and a passed-through model is stale).
                            subscription.request_snapshot();
                            requested = true;
                            passthrough = None;
                        }
                        _ => {}
                    }
                    match &delivery {
                        Delivery::Snapshot(s) if fits(view.size(), self.out.size) => {
                            // (Re)start the passthrough from the screen as it is.
                            bytes_sent.inc_by(s.data.len() as u64);
                            self.out.forget_screen();
                            self.out.write([RESET, &s.data[..]].concat()).await?;
                            self.write_status(&view).await?;
                            passthrough = Some(true);
                        }
                        Delivery::Snapshot(_) => {
                            self.out.draw(|f| draw_cropped(f, &mut view)).await?;
                            passthrough = Some(false);
                        }
                        Delivery::Event(_) if passthrough == Some(false) => {
                            self.out.draw(|f| draw_cropped(f, &mut view)).await?;
                        }
                        Delivery::Event(_) => {}
                    }
                }
                step = self.next_key(false) => match step? {
                    Step::Redraw => {
                        // This terminal changed: redraw from the screen as it is.
                        subscription.request_snapshot();
                        requested = true;
                        passthrough = None;
                    }
                    Step::Key(key) => {
                        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                            && key.code == KeyCode::Char('c');
                        if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                            break None;
                        }
                        // Anything else is the watcher's own: it never reaches the game.
                    }
                },
                () = spectator.removed.cancelled() => {
                    break Some("You were removed from this game's spectators.".to_owned());
                }
            }
        };
        Ok(outcome)
    }

    /// Below a passed-through game, when the terminal has a spare row.
    async fn write_status(&self, view: &GameView) -> Result<(), End> {
        let (cols, rows) = self.out.size;
        let game = view.size();
        if rows <= game.rows {
            return Ok(());
        }
        let area = ratatui::layout::Rect::new(0, 0, cols, rows);
        let mut status = view.status_line(area).to_string();
        status.push_str(" · q: back");
        let status: String = status.chars().take(usize::from(cols)).collect();
        self.out
            .write(format!(
                "\x1b7\x1b[{};1H\x1b[0;7m{status}\x1b[K\x1b[0m\x1b8",
                game.rows + 1
            ))
            .await?;
        Ok(())
    }
}

/// A watcher's registration, removed however watching ends.
struct Registration {
    session: Arc<Session>,
    spectator: Arc<Spectator>,
    connections: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.session.spectators.remove(&self.spectator.id);
        self.connections.dec();
        info!(session_id = %self.session.info.id, spectator_username = %self.spectator.username,
              spectator_count = self.session.spectators.len(), "SSH spectator left");
    }
}

/// The game fits the terminal (with or without a row to spare).
fn fits(game: TermSize, (cols, rows): (u16, u16)) -> bool {
    game.cols <= cols && game.rows <= rows
}

/// A game larger than the terminal: cropped around its cursor, with a status line.
fn draw_cropped(frame: &mut ratatui::Frame, view: &mut GameView) {
    let [game, status] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
    if let Some(cursor) = view.draw(game, frame.buffer_mut()) {
        frame.set_cursor_position(cursor);
    }
    let mut line = view.status_line(game);
    line.push_span(" · q: back");
    frame.render_widget(
        Paragraph::new(line).style(Style::default().bg(Color::DarkGray).fg(Color::White)),
        status,
    );
}
