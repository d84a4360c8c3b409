//! The write-ahead log of the sled backend. Each group commit appends one record holding every
//! key/value operation of its batch, then `fdatasync`s: that is the durability point. sled is
//! flushed at checkpoints, after which the log is truncated. Records are framed as
//! `[len u32 LE][checksum u64 LE][payload]`; replay stops at the first torn or corrupt record,
//! which belongs to a batch that was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One absolute operation on a tree: replaying it twice gives the same result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Op {
    pub tree: u8,
    pub key: Vec<u8>,
    /// `None` removes the key.
    pub value: Option<Vec<u8>>,
}

const HEADER: usize = 12;
/// The largest record replay accepts; a larger length is corruption.
const MAX_RECORD: usize = 1 << 30;
const FORMAT_V1: u8 = 1;

pub(crate) struct Wal {
    file: File,
    len: u64,
}

/// FNV-1a 64: detects torn writes; not a defence against tampering.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Wal {
    /// Opens the log, returning it with the batches it holds (oldest first).
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<Vec<Op>>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut batches = Vec::new();
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + HEADER) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let sum = u64::from_le_bytes(header[4..12].try_into().unwrap_or([0; 8]));
            let Some(payload) = bytes
                .get(at + HEADER..at + HEADER + len)
                .filter(|_| len <= MAX_RECORD)
            else {
                break;
            };
            if checksum(payload) != sum {
                break;
            }
            match payload.split_first() {
                Some((&FORMAT_V1, body)) => match bincode::deserialize::<Vec<Op>>(body) {
                    Ok(ops) => batches.push(ops),
                    Err(_) => break,
                },
                _ => break,
            }
            at += HEADER + len;
        }
        if at < bytes.len() {
            tracing::warn!(
                kept = at,
                dropped = bytes.len() - at,
                "write-ahead log had a torn tail (an unacknowledged batch)"
            );
            file.set_len(at as u64)?;
        }
        Ok((
            Self {
                file,
                len: at as u64,
            },
            batches,
        ))
    }

    /// Appends one batch and makes it durable.
    pub fn append(&mut self, ops: &[Op]) -> std::io::Result<()> {
        let mut payload = vec![FORMAT_V1];
        bincode::serialize_into(&mut payload, ops).map_err(std::io::Error::other)?;
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.len += record.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Empties the log; call only once everything it holds is durable elsewhere.
    pub fn truncate(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(k: u8) -> Op {
        Op {
            tree: 1,
            key: vec![k],
            value: Some(vec![k; 3]),
        }
    }

    #[test]
    fn batches_round_trip_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut wal, old) = Wal::open(&path).unwrap();
            assert!(old.is_empty());
            wal.append(&[op(1), op(2)]).unwrap();
            wal.append(&[op(3)]).unwrap();
        }
        // A crash mid-append leaves half a record.
        let full = std::fs::read(&path).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&full[..full.len() / 3]).unwrap();
        drop(f);
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, vec![vec![op(1), op(2)], vec![op(3)]]);
        assert_eq!(wal.len(), full.len() as u64);
        wal.append(&[op(4)]).unwrap();
        wal.truncate().unwrap();
        let (_, batches) = Wal::open(&path).unwrap();
        assert!(batches.is_empty());
    }

    #[test]
    fn a_corrupt_record_ends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut wal, _) = Wal::open(&path).unwrap();
            wal.append(&[op(1)]).unwrap();
            wal.append(&[op(2)]).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, vec![vec![op(1)]]);
    }
}
