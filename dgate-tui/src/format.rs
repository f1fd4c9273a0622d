//! How times read in lists and menus, the same in `dgate list` and the watch menu.

use std::time::{Duration, SystemTime};

/// `2025-07-06 02:56:44` (UTC), or nothing when unknown.
pub fn start_time(t: Option<SystemTime>) -> String {
    t.map(|t| {
        humantime::format_rfc3339_seconds(t)
            .to_string()
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_owned()
    })
    .unwrap_or_default()
}

/// `5m 23s`, `6s`, `2h 5m`, `3d 4h`.
pub fn idle(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_times_read_like_the_watch_menu() {
        assert_eq!(idle(Duration::from_secs(6)), "6s");
        assert_eq!(idle(Duration::from_secs(323)), "5m 23s");
        assert_eq!(idle(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(idle(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d 4h");
    }

    #[test]
    fn start_times_are_utc_to_the_second() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_751_770_604);
        assert_eq!(start_time(Some(t)), "2025-07-06 02:56:44");
        assert_eq!(start_time(None), "");
    }
}
