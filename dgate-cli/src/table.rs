//! Plain-text tables that fit the terminal: columns as wide as their
//! contents, and in a terminal too narrow for them the long columns cut
//! first (in the order given), down to their minimum. Piped output keeps
//! every column whole.

use std::io::{self, IsTerminal, Write};

pub struct Column {
    pub header: &'static str,
    pub right_aligned: bool,
    /// Never cut below this many characters.
    pub min: usize,
    /// Cut text ends with `…` (not for ids, which are used by their prefix).
    pub ellipsis: bool,
}

impl Column {
    pub const fn left(header: &'static str, min: usize) -> Self {
        Self {
            header,
            right_aligned: false,
            min,
            ellipsis: true,
        }
    }

    pub const fn right(header: &'static str) -> Self {
        Self {
            header,
            right_aligned: true,
            min: header.len(),
            ellipsis: true,
        }
    }

    /// Cut without `…`: what is left is still a usable prefix.
    pub const fn prefix(mut self) -> Self {
        self.ellipsis = false;
        self
    }
}

/// Columns are separated by two spaces.
const GAP: usize = 2;

/// The width to fit: the terminal's when stdout is one, else none.
pub fn terminal_width() -> Option<usize> {
    if !io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(cols, _)| usize::from(cols))
}

/// Writes the header and `rows` within `width` (if any), cutting the
/// columns in `cut_order` (indexes) first.
pub fn write(
    out: &mut impl Write,
    columns: &[Column],
    rows: &[Vec<String>],
    width: Option<usize>,
    cut_order: &[usize],
) -> io::Result<()> {
    let mut widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |cell| cell.chars().count()))
                .chain([c.header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    if let Some(width) = width {
        let total = |widths: &[usize]| widths.iter().sum::<usize>() + GAP * (widths.len() - 1);
        // An index past the columns (one shown only sometimes) is skipped.
        let shown = widths.len();
        for &i in cut_order.iter().filter(|&&i| i < shown) {
            let over = total(&widths).saturating_sub(width);
            if over == 0 {
                break;
            }
            let floor = columns[i].min.max(columns[i].header.len());
            widths[i] -= over.min(widths[i].saturating_sub(floor));
        }
    }
    let header: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (column, width)) in columns.iter().zip(&widths).enumerate() {
            let cell = fit(
                row.get(i).map_or("", String::as_str),
                *width,
                column.ellipsis,
            );
            let pad = width - cell.chars().count();
            if i > 0 {
                line.push_str(&" ".repeat(GAP));
            }
            if column.right_aligned {
                line.push_str(&" ".repeat(pad));
                line.push_str(&cell);
            } else {
                line.push_str(&cell);
                if i + 1 < columns.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `text` cut to `width` characters.
fn fit(text: &str, width: usize, ellipsis: bool) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if ellipsis && width > 0 {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    } else {
        text.chars().take(width).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(width: Option<usize>) -> Vec<String> {
        let columns = [
            Column::left("SESSION", 12).prefix(),
            Column::left("USERNAME", 6),
            Column::right("WATCHERS"),
        ];
        let rows = vec![vec![
            "0123456789abcdef0123456789abcdef".to_owned(),
            "a_rather_long_name_x".to_owned(),
            "3".to_owned(),
        ]];
        let mut out = Vec::new();
        write(&mut out, &columns, &rows, width, &[0, 1]).expect("write");
        String::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn piped_tables_keep_every_column_whole() {
        let lines = render(None);
        assert!(lines[1].starts_with("0123456789abcdef0123456789abcdef  a_rather_long_name_x"));
        assert!(lines[1].ends_with("  3"));
    }

    #[test]
    fn narrow_terminals_cut_the_long_columns_first() {
        // 12 + 2 + 20 + 2 + 8: the id is cut to its minimum, the name is whole.
        let lines = render(Some(44));
        assert!(lines.iter().all(|l| l.chars().count() <= 44), "{lines:?}");
        assert!(lines[1].starts_with("0123456789ab  "), "{lines:?}");
        assert!(lines[1].contains("a_rather_long_name_x"), "{lines:?}");
        let lines = render(Some(40));
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert!(lines[1].contains("a_rather_long_n… "), "{lines:?}");
    }
}
