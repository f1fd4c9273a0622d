//! Late joiners are exact for real programs at every moment: real vim,
//! less, top, DCSS console, NetHack with DECgraphics and a shell inside a
//! scroll region run as games; their output,
//! as the hub numbered it (the recording's records), is split at every frame
//! boundary, and a terminal fed the snapshot of what came before and then
//! the rest must show what one fed the whole output shows. The judges are
//! other terminals: asciinema's `avt` at every boundary, real tmux
//! (`capture-pane -e`, colours included) at a few.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::tmux::Tmux;
use common::*;
use dgate_server::config::{Compression, GameConfig};
use dgate_term::ScreenModel;
use dgate_term::ttyrec::Reader;

const COLS: u16 = 80;
const ROWS: u16 = 24;

/// Readable by the games' account, which the programs run as.
fn readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// A real program as a game.
fn program(id: &str, path: &str, args: &[&str]) -> GameConfig {
    let mut game = testgame(id, &[]);
    game.binary.path = path.into();
    game.binary.args = args.iter().map(|a| (*a).to_owned()).collect();
    game
}

/// Each cell (character, colours, attributes) and the cursor, by avt.
fn avt_screen(bytes: &[u8]) -> (Vec<String>, (usize, usize), bool) {
    let mut t = avt::Terminal::new(usize::from(COLS), usize::from(ROWS)).expect("size");
    t.feed(String::from_utf8_lossy(bytes).as_ref());
    let rows = t
        .screen()
        .visible_lines()
        .map(|line| {
            line.cells()
                .iter()
                .map(|c| {
                    let p = c.pen();
                    if c.char() == ' ' {
                        format!("[{:?}]", p.background())
                    } else {
                        format!(
                            "{}{:?}{:?}{}{}{}",
                            c.char(),
                            p.foreground(),
                            p.background(),
                            u8::from(p.is_bold()),
                            u8::from(p.is_underline()),
                            u8::from(p.is_inverse())
                        )
                    }
                })
                .collect()
        })
        .collect();
    let cursor = t.cursor();
    (rows, (cursor.row, cursor.col), cursor.visible)
}

/// What tmux shows after `bytes`: the pane with tmux's own escape codes,
/// and the cursor.
fn tmux_screen(tmux: &Tmux, name: &str, bytes: &[u8], dir: &Path) -> (String, String) {
    let file = dir.join(format!("{name}.bytes"));
    std::fs::write(&file, bytes).expect("write");
    tmux.start(
        name,
        (COLS, ROWS),
        &[],
        &format!("stty raw -echo; cat {}; sleep 600", file.display()),
    );
    // cat is done when the pane's content stops changing.
    let mut last = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = tmux.capture_escaped(name);
        if now == last && !now.trim().is_empty() {
            break;
        }
        last = now;
    }
    let cursor = Command::new("tmux")
        .args(["-L", tmux.socket(), "display", "-p", "-t", name])
        .arg("#{cursor_x},#{cursor_y},#{cursor_flag}")
        .output()
        .expect("tmux display");
    (last, String::from_utf8_lossy(&cursor.stdout).into_owned())
}

/// Runs `game` as `player`, typing `keys` (each waited for by the text
/// that follows it), and returns its output as the hub numbered it.
async fn frames_of(game: GameConfig, keys: &[(&[u8], &str)]) -> Vec<Vec<u8>> {
    frames_of_as("judy", game, keys).await
}

async fn frames_of_as(name: &str, game: GameConfig, keys: &[(&[u8], &str)]) -> Vec<Vec<u8>> {
    let id = game.id.clone();
    let server = start_server(move |c| {
        c.session_management.ttyrec.compression = Compression::None;
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    let session = server
        .start_game_sized(name, &id, Some((u32::from(COLS), u32::from(ROWS))))
        .await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    for (typed, then) in keys {
        player.send(typed).await;
        player
            .wait_for_text(then)
            .await
            .unwrap_or_else(|e| panic!("{id}: waiting for {then:?}: {e}"));
    }
    player.read_to_end().await.expect("the program ends");
    server.manager.finish_recordings().await;
    let entry = server
        .manager
        .library()
        .list(name, &id, 0)
        .await
        .into_iter()
        .next()
        .expect("a recording");
    let records = Reader::new(std::fs::File::open(&entry.path).expect("open"))
        .read_all()
        .expect("records");
    server.shutdown().await;
    records.into_iter().map(|r| r.data).collect()
}

/// The snapshot at every frame boundary, then the rest, looks like the
/// whole stream to avt; at a few boundaries, to tmux as well.
fn check_every_boundary(what: &str, frames: &[Vec<u8>]) {
    assert!(frames.len() > 5, "{what}: only {} frames", frames.len());
    let whole: Vec<u8> = frames.concat();
    let expected = avt_screen(&whole);
    let mut model = ScreenModel::new(dgate_term::TermSize::new(COLS, ROWS));
    let mut joined_at = Vec::new();
    for k in 0..=frames.len() {
        let mut bytes = model.snapshot();
        for f in &frames[k..] {
            bytes.extend_from_slice(f);
        }
        assert!(
            avt_screen(&bytes) == expected,
            "{what}: a viewer joining after frame {k} of {} ends on another screen",
            frames.len()
        );
        joined_at.push(bytes);
        if let Some(f) = frames.get(k) {
            model.process(f);
        }
    }
    // tmux: the whole stream, and joins at a quarter, half and three quarters.
    let tmux = Tmux::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = tmux_screen(&tmux, "whole", &whole, dir.path());
    for (i, k) in [frames.len() / 4, frames.len() / 2, frames.len() * 3 / 4]
        .into_iter()
        .enumerate()
    {
        let joined = tmux_screen(&tmux, &format!("join{i}"), &joined_at[k], dir.path());
        assert_eq!(
            joined, reference,
            "{what}: in tmux, a viewer joining after frame {k} sees another screen"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vim_scrolling_and_splitting_windows() {
    let file = tempfile::NamedTempFile::new().expect("file");
    let text: String = (1..=300)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    std::fs::write(file.path(), text).expect("write");
    readable(file.path());
    let path = file.path().to_str().expect("utf-8").to_owned();
    // The split's status lines name the file.
    let name = file
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a name")
        .to_owned();
    let game = program(
        "vim",
        "/usr/bin/vim",
        &["-u", "NONE", "-N", "-i", "NONE", "-n", &path],
    );
    let frames = frames_of(
        game,
        &[
            (b"", "line 1:"),
            (b":set number\r", "  1 line 1"),
            (b"\x06", "line 4"),
            (b"\x06", "line 6"),
            (b"\x02", "line 2"),
            (b"40j", "line 4"),
            (b"\x05\x05\x05\x19\x19", "line"),
            (b":split\r", &name),
            (b"\x17j", "line"),
            (b"G", "line 300"),
            (b"\x17k", "line"),
            (b"gg", "line 1:"),
            (b":syntax on\r", "line"),
            (b":qa!\r", ""),
        ],
    )
    .await;
    check_every_boundary("vim", &frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn less_paging_forward_and_back() {
    let file = tempfile::NamedTempFile::new().expect("file");
    let text: String = (1..=200)
        .map(|i| format!("\x1b[3{}mrow {i}\x1b[0m of some coloured text\n", i % 8))
        .collect();
    std::fs::write(file.path(), text).expect("write");
    readable(file.path());
    let path = file.path().to_str().expect("utf-8").to_owned();
    let mut game = program("less", "/usr/bin/less", &["-R", &path]);
    game.environment.insert("LESSHISTFILE".into(), "-".into());
    let frames = frames_of(
        game,
        &[
            (b"", "row 1 "),
            (b" ", "row 30"),
            (b" ", "row 50"),
            (b"b", "row 26"),
            (b"kkkkk", "row 21"),
            (b"jjj", "row 24"),
            (b"/row 150\r", "row 150"),
            (b"G", "row 200"),
            (b"g", "row 1 "),
            (b"q", ""),
        ],
    )
    .await;
    check_every_boundary("less", &frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_printing_inside_a_scroll_region() {
    // A status line at the top and bottom; the lines scroll between them,
    // with colours, as IRC clients and status-line shells draw.
    let script = "printf '\\033[2J\\033[1;1H\\033[7m status \\033[0m\\033[24;1H\\033[44m bottom \\033[0m\\033[2;23r\\033[23;1H'; \
        i=0; while [ $i -lt 80 ]; do printf '\\033[3%dmline %d\\033[0m of the log\\n' $((i % 8)) $i; i=$((i+1)); sleep 0.005; done; \
        printf '\\033[1;1Hdone'; read x";
    let game = program("region", "/bin/sh", &["-c", script]);
    let frames = frames_of(game, &[(b"", "done"), (b"\r", "")]).await;
    check_every_boundary("a scroll region", &frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_redrawing_in_place() {
    let mut game = program("top", "/usr/bin/top", &["-d", "0.1", "-n", "20"]);
    game.environment.insert("HOME".into(), "%d/users/%u".into());
    let frames = frames_of(game, &[]).await;
    check_every_boundary("top", &frames);
}

/// DCSS console (Debian `crawl`): its menus and map, drawn on explicit
/// black backgrounds (back-colour erase), which a joiner must see as the
/// player does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcss_character_creation_inventory_and_map() {
    const CRAWL: &str = "/usr/games/crawl";
    assert!(
        Path::new(CRAWL).exists(),
        "{CRAWL} is needed (apt-get install crawl; .ci/run installs it)"
    );
    let game = program(
        "crawl-snapshots",
        CRAWL,
        &[
            "-name",
            "%u",
            "-species",
            "Mi",
            "-background",
            "Fi",
            "-seed",
            "1",
            "-dir",
            "%d/games/%u/saves",
            "-morgue",
            "%d/games/%u/morgue",
        ],
    );
    let frames = frames_of(
        game,
        &[
            (b"", "choice of weapons"),
            (b"c", "Place: Dungeon:1"),
            (b"i", "Inventory"),
            (b"\x1b", "Place: Dungeon:1"),
            (b"jjkkll", "Time:"),
            (b"%", "rFire"),
            (b"\x1b", "Place: Dungeon:1"),
            // Ctrl+S: save and quit.
            (b"\x13", ""),
        ],
    )
    .await;
    check_every_boundary("DCSS", &frames);
}

/// NetHack with DECgraphics (line drawing through `ESC ( 0` and SO/SI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nethack_with_decgraphics() {
    const NETHACK: &str = "/usr/games/nethack";
    assert!(
        Path::new(NETHACK).exists(),
        "{NETHACK} is needed (apt-get install nethack-console; .ci/run installs it)"
    );
    let name = format!("sn{}", std::process::id());
    let mut game = program("nh", NETHACK, &["-u", &name]);
    game.environment.insert(
        "NETHACKOPTIONS".into(),
        "DECgraphics,color,time,showexp,!autopickup,!legacy,suppress_alert:3.4.3".into(),
    );
    let frames = frames_of_as(
        &name,
        game,
        &[
            (b"", "Shall I pick"),
            (b"y", "Is this ok?"),
            (b"y", "welcome to NetHack"),
            (b"\x1b", "Dlvl:1"),
            (b"hjkl", "T:"),
            // Escapes end any --More-- the random game shows first.
            (b"\x1b\x1b\x1bS", "Really save?"),
            (b"y", ""),
        ],
    )
    .await;
    // NetHack keeps saves in its own playground: this test's goes.
    if let Ok(entries) = std::fs::read_dir("/var/games/nethack/save") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    check_every_boundary("NetHack", &frames);
}
