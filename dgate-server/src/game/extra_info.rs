//! The one line a game writes about itself for the watch menus ("Dlvl:12
//! Val-Hum-Fem"), read from the file it keeps up to date: dgamelaunch's
//! extra-info file (`weight|text`, NetHack's `EXTRAINFO_FN`) or DCSS's
//! `<name>.where` (`key=value` fields joined by `:`, `::` a literal colon).
//!
//! The file is the game's, so it is untrusted: whatever it holds, a listing
//! gets at most [`MAX_TEXT`] printable characters or nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dgate_term::listing::ExtraInfo;

/// Characters of text a listing shows at most.
pub const MAX_TEXT: usize = 60;
/// Bytes read from the file at most: both formats are one short line.
const MAX_FILE: u64 = 4096;
/// How long a reading is used before the file is read again.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// Which of the two formats a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// dgamelaunch's `weight|text`.
    Dgamelaunch,
    /// DCSS's `.where`.
    CrawlWhere,
}

/// One game's extra-info file and its latest reading.
#[derive(Debug)]
pub struct ExtraInfoFile {
    path: PathBuf,
    format: Format,
    read: Option<(Instant, Option<ExtraInfo>)>,
}

impl ExtraInfoFile {
    pub fn new(path: PathBuf, format: Format) -> Self {
        Self {
            path,
            format,
            read: None,
        }
    }

    /// What the file says now, read again when the last reading is over a
    /// second old. A missing, unreadable or malformed file says nothing.
    pub fn current(&mut self) -> Option<ExtraInfo> {
        if let Some((at, info)) = &self.read
            && at.elapsed() < FRESH_FOR
        {
            return info.clone();
        }
        let info = read_prefix(&self.path).and_then(|text| parse(self.format, &text));
        self.read = Some((Instant::now(), info.clone()));
        info
    }
}

fn read_prefix(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The extra info in `text`, a file of `format`.
pub fn parse(format: Format, text: &str) -> Option<ExtraInfo> {
    let line = text.lines().next()?;
    match format {
        Format::Dgamelaunch => parse_dgamelaunch(line),
        Format::CrawlWhere => parse_where(line),
    }
}

/// `weight|text`, as dgamelaunch reads it: the weight is the number before
/// the bar (0 when it is not one), the text what follows; a line without a
/// bar is all text.
fn parse_dgamelaunch(line: &str) -> Option<ExtraInfo> {
    let (weight, text) = match line.split_once('|') {
        Some((weight, text)) => (weight.trim().parse().unwrap_or(0), text),
        None => (0, line),
    };
    let text = printable(text)?;
    Some(ExtraInfo { weight, text })
}

/// Crawl's `.where`: `L3 MiFi, D:4` from `xl`, `char` and `place`; the weight
/// is the experience level, then the depth, so the deepest of the strongest
/// sort first.
fn parse_where(line: &str) -> Option<ExtraInfo> {
    let fields = where_fields(line);
    let field = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let xl: Option<i64> = field("xl").and_then(|v| v.parse().ok());
    let character = field("char").filter(|c| !c.is_empty());
    let place = field("place").filter(|p| !p.is_empty());
    let mut text = String::new();
    if let Some(xl) = xl {
        text.push_str(&format!("L{xl}"));
    }
    if let Some(character) = character {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(character);
    }
    if let Some(place) = place {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(place);
    }
    let text = printable(&text)?;
    let depth: i64 = field("absdepth")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .clamp(0, 999);
    let weight = xl.unwrap_or(0).clamp(0, 99) * 1000 + depth;
    Some(ExtraInfo { weight, text })
}

/// `key=value` fields split at single colons, `::` standing for a colon.
fn where_fields(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            if chars.peek() == Some(&':') {
                chars.next();
                current.push(':');
                continue;
            }
            fields.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    fields.push(current);
    fields
        .into_iter()
        .filter_map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// `text` without surrounding blanks, cut to [`MAX_TEXT`] characters;
/// `None` when it is empty or holds a control character (an escape sequence
/// with its escapes removed would still be garbage).
fn printable(text: &str) -> Option<String> {
    let text = text.trim_matches(|c: char| c.is_whitespace());
    if text.is_empty() || text.chars().any(char::is_control) {
        return None;
    }
    Some(
        text.chars()
            .take(MAX_TEXT)
            .collect::<String>()
            .trim_end()
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(weight: i64, text: &str) -> Option<ExtraInfo> {
        Some(ExtraInfo {
            weight,
            text: text.to_owned(),
        })
    }

    #[test]
    fn dgamelaunch_lines_give_weight_and_text() {
        let parse = |t| parse(Format::Dgamelaunch, t);
        assert_eq!(
            parse("112|Dlvl:12 Val-Hum-Fem\n"),
            info(112, "Dlvl:12 Val-Hum-Fem")
        );
        assert_eq!(parse("Dlvl:3"), info(0, "Dlvl:3"));
        assert_eq!(parse("x|Dlvl:3"), info(0, "Dlvl:3"));
        assert_eq!(parse("5|a|b"), info(5, "a|b"));
        assert_eq!(parse(""), None);
        assert_eq!(parse("7|  \n"), None);
    }

    #[test]
    fn crawl_where_files_read_as_webtiles_shows_them() {
        let line = "name=alice:race=Minotaur:cls=Fighter:char=MiFi:xl=3:sk=Fighting:\
                    sklev=5:title=Skirmisher:place=D::4:br=D:lvl=4:absdepth=4:hp=30:\
                    mhp=30:turn=1234:status=active\n";
        assert_eq!(parse(Format::CrawlWhere, line), info(3004, "L3 MiFi, D:4"));
        assert_eq!(
            parse(Format::CrawlWhere, "place=Lair::2"),
            info(0, "Lair:2")
        );
        assert_eq!(parse(Format::CrawlWhere, "garbage without fields"), None);
    }

    #[test]
    fn hostile_files_show_printable_text_or_nothing() {
        let hostile = "9|\x1b[2J\x1b]0;owned\x07Dlvl:1";
        assert_eq!(parse(Format::Dgamelaunch, hostile), None);
        assert_eq!(
            parse(Format::Dgamelaunch, "9|Dlvl:1\r\n"),
            info(9, "Dlvl:1")
        );
        let long = format!("1|{}", "x".repeat(500));
        let shown = parse(Format::Dgamelaunch, &long).expect("some text");
        assert_eq!(shown.text.chars().count(), MAX_TEXT);
        assert_eq!(parse(Format::Dgamelaunch, "3|\x07\x08\x1b"), None);
        let huge = format!("xl=99999999999999999999:char={}", "\u{0}".repeat(9));
        assert_eq!(parse(Format::CrawlWhere, &huge), None);
    }

    #[test]
    fn a_file_is_read_again_once_it_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alice.extrainfo");
        let mut file = ExtraInfoFile::new(path.clone(), Format::Dgamelaunch);
        assert_eq!(file.current(), None);
        std::fs::write(&path, "1|Dlvl:1").expect("write");
        file.read = None;
        assert_eq!(file.current(), info(1, "Dlvl:1"));
        std::fs::write(&path, "2|Dlvl:2").expect("write");
        assert_eq!(file.current(), info(1, "Dlvl:1"), "fresh for a second");
        file.read = file
            .read
            .take()
            .map(|(_, i)| (Instant::now() - FRESH_FOR, i));
        assert_eq!(file.current(), info(2, "Dlvl:2"));
    }
}
