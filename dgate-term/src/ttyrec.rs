//! The ttyrec format: a sequence of records, each a 12-byte little-endian
//! header (seconds, microseconds, length) and then `length` bytes of terminal
//! output. Readers of untrusted files get clear errors, never a huge
//! allocation: a record longer than `MAX_RECORD` is refused.

use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest record accepted when reading (a frame is at most 16 KiB when we
/// write; other recorders write a few KiB).
pub const MAX_RECORD: u32 = 1 << 20;

/// One record: when it was written and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: SystemTime,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TtyrecError {
    #[error(
        "record {index} at byte {offset} says it is {length} bytes long; the limit is {MAX_RECORD}"
    )]
    TooLong {
        index: usize,
        offset: u64,
        length: u32,
    },
    #[error("record {index} at byte {offset} is cut short: the file ends inside it")]
    Truncated { index: usize, offset: u64 },
    #[error("record {index} at byte {offset} has {micros} microseconds (at most 999999)")]
    BadTime {
        index: usize,
        offset: u64,
        micros: u32,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes one record.
pub fn write_record(out: &mut impl Write, time: SystemTime, data: &[u8]) -> io::Result<()> {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let length = u32::try_from(data.len()).map_err(|_| io::Error::other("a record over 4 GiB"))?;
    let mut header = [0u8; 12];
    header[..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
    header[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
    header[8..].copy_from_slice(&length.to_le_bytes());
    out.write_all(&header)?;
    out.write_all(data)
}

/// Reads records one at a time.
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    index: usize,
    offset: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            index: 0,
            offset: 0,
        }
    }

    /// The next record; `None` at a clean end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record>, TtyrecError> {
        let (index, offset) = (self.index, self.offset);
        let mut header = [0u8; 12];
        let got = read_full(&mut self.input, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            return Err(TtyrecError::Truncated { index, offset });
        }
        let field =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (secs, micros, length) = (field(0), field(4), field(8));
        if length > MAX_RECORD {
            return Err(TtyrecError::TooLong {
                index,
                offset,
                length,
            });
        }
        if micros >= 1_000_000 {
            return Err(TtyrecError::BadTime {
                index,
                offset,
                micros,
            });
        }
        let mut data = vec![0u8; length as usize];
        if read_full(&mut self.input, &mut data)? < data.len() {
            return Err(TtyrecError::Truncated { index, offset });
        }
        self.index += 1;
        self.offset += 12 + u64::from(length);
        let time = UNIX_EPOCH
            + Duration::from_secs(u64::from(secs))
            + Duration::from_micros(u64::from(micros));
        Ok(Some(Record { time, data }))
    }

    /// Every remaining record.
    pub fn read_all(mut self) -> Result<Vec<Record>, TtyrecError> {
        let mut records = Vec::new();
        while let Some(record) = self.next_record()? {
            records.push(record);
        }
        Ok(records)
    }
}

/// Fills `buf` as far as the input goes; returns how much it read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_their_times() {
        let t0 = UNIX_EPOCH + Duration::from_micros(1_764_115_200_123_456);
        let mut file = Vec::new();
        write_record(&mut file, t0, b"\x1b[Hhello").expect("write");
        write_record(&mut file, t0 + Duration::from_millis(1500), b"").expect("write");
        write_record(&mut file, t0 + Duration::from_secs(3), &[0xff; 5000]).expect("write");
        let records = Reader::new(&file[..]).read_all().expect("read");
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[0],
            Record {
                time: t0,
                data: b"\x1b[Hhello".to_vec()
            }
        );
        assert_eq!(records[1].time, t0 + Duration::from_millis(1500));
        assert_eq!(records[2].data.len(), 5000);
    }

    #[test]
    fn hostile_files_get_clear_errors_and_no_huge_allocation() {
        assert!(
            Reader::new(&b""[..])
                .read_all()
                .expect("empty file")
                .is_empty()
        );
        // A length field of 4 GiB.
        let mut huge = vec![0u8; 8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = Reader::new(&huge[..]).read_all().expect_err("too long");
        assert!(
            matches!(
                err,
                TtyrecError::TooLong {
                    length: u32::MAX,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("4294967295"), "{err}");
        // Truncated header and truncated data.
        let mut file = Vec::new();
        write_record(&mut file, UNIX_EPOCH, b"complete").expect("write");
        let whole = file.len();
        write_record(&mut file, UNIX_EPOCH, b"cut short").expect("write");
        for cut in [whole + 5, file.len() - 3] {
            let err = Reader::new(&file[..cut]).read_all().expect_err("truncated");
            assert!(
                matches!(err, TtyrecError::Truncated { index: 1, .. }),
                "{err}"
            );
        }
        // Garbage.
        let garbage: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(97)).collect();
        assert!(Reader::new(&garbage[..]).read_all().is_err());
    }
}
