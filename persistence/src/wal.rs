//! The write-ahead log of the sled backend. Each group commit writes one record holding every
//! key/value operation of its batch, then `fdatasync`s: that is the durability point. sled is
//! flushed at checkpoints, after which the log is reset.
//!
//! The file is preallocated with written zeros and records overwrite it in place, so a sync flushes
//! data only: appending would also change the file's size, and every `fdatasync` would then
//! commit a filesystem journal transaction as well. A reset bumps the generation in the header;
//! replay reads records of the header's generation until the first torn, corrupt or stale one.
//!
//! Layout: a header block `[magic 8][generation u64 LE][checksum u64 LE]`, zero-padded to
//! [`HEADER_BYTES`], then records `[len u32 LE][checksum u64 LE][generation u64 LE][payload]`,
//! the checksum covering generation and payload.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One absolute operation on a tree: replaying it twice gives the same result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Op {
    pub tree: u8,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// `None` removes the key.
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
}

const MAGIC: &[u8; 8] = b"EMPWAL01";
const HEADER_BYTES: u64 = 4096;
const RECORD_HEADER: usize = 20;
/// The file grows by this much of written zeros whenever a record would not fit.
const PREALLOCATE: u64 = 16 << 20;
/// The largest record replay accepts; a larger length is corruption.
const MAX_RECORD: usize = 1 << 30;
const FORMAT_V1: u8 = 1;

pub(crate) struct Wal {
    file: File,
    generation: u64,
    /// Where the next record goes.
    end: u64,
    capacity: u64,
}

/// FNV-1a 64: detects torn writes; not a defence against tampering.
fn checksum(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl Wal {
    /// Opens the log, returning it with the batches of its current generation (oldest first).
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<Vec<Op>>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let header_ok = bytes.get(..8) == Some(MAGIC.as_slice())
            && bytes
                .get(..16)
                .is_some_and(|h| checksum(&[h]) == u64_at(&bytes, 16));
        // A fresh or damaged log starts its generations at the current time in microseconds, above
        // any generation an earlier life of the file can have used (they grow by one per reset).
        let generation = if header_ok {
            u64_at(&bytes, 8)
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        };
        let mut batches = Vec::new();
        // Without a valid header there is no generation to trust: nothing is replayed.
        let records = match bytes.get(HEADER_BYTES as usize..) {
            Some(records) if header_ok => records,
            _ => &[],
        };
        let mut offset = 0;
        while let Some(head) = records.get(offset..offset + RECORD_HEADER) {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let (sum, record_generation) = (u64_at(head, 4), u64_at(head, 12));
            if len == 0 || len > MAX_RECORD || record_generation != generation {
                break;
            }
            let Some(payload) = records.get(offset + RECORD_HEADER..offset + RECORD_HEADER + len)
            else {
                break;
            };
            if checksum(&[&head[12..20], payload]) != sum {
                break;
            }
            match payload.split_first() {
                Some((&FORMAT_V1, body)) => match bincode::deserialize::<Vec<Op>>(body) {
                    Ok(ops) => batches.push(ops),
                    Err(_) => break,
                },
                _ => break,
            }
            offset += RECORD_HEADER + len;
        }
        let at = HEADER_BYTES as usize + offset;
        let mut wal = Self {
            file,
            generation,
            end: at as u64,
            capacity: bytes.len() as u64,
        };
        if !header_ok {
            wal.reset()?;
        }
        Ok((wal, batches))
    }

    /// Writes zeros up to `capacity` bytes, so later writes in that range change no metadata.
    fn preallocate(&mut self, capacity: u64) -> std::io::Result<()> {
        const CHUNK: usize = 1 << 20;
        let zeros = vec![0u8; CHUNK];
        while self.capacity < capacity {
            let n = (capacity - self.capacity).min(CHUNK as u64) as usize;
            self.file.write_all_at(&zeros[..n], self.capacity)?;
            self.capacity += n as u64;
        }
        self.file.sync_all()
    }

    /// Writes one batch and makes it durable.
    pub fn append(&mut self, ops: &[Op]) -> std::io::Result<()> {
        let mut payload = vec![FORMAT_V1];
        bincode::serialize_into(&mut payload, ops).map_err(std::io::Error::other)?;
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        let generation = self.generation.to_le_bytes();
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(&[&generation, &payload]).to_le_bytes());
        record.extend_from_slice(&generation);
        record.extend_from_slice(&payload);
        // Keep a zeroed record header after this one, so replay finds a clean end.
        let needed = self.end + record.len() as u64 + RECORD_HEADER as u64;
        if needed > self.capacity {
            self.preallocate(needed + PREALLOCATE)?;
        }
        self.file.write_all_at(&record, self.end)?;
        self.file.sync_data()?;
        self.end += record.len() as u64;
        Ok(())
    }

    /// Bytes of records in the current generation.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(HEADER_BYTES)
    }

    /// Empties the log; call only once everything it holds is durable elsewhere. Older records
    /// stay on disk but belong to an older generation, which replay ignores.
    pub fn reset(&mut self) -> std::io::Result<()> {
        if self.capacity < HEADER_BYTES + PREALLOCATE {
            self.preallocate(HEADER_BYTES + PREALLOCATE)?;
        }
        // Committed to memory only once on disk: a failed reset leaves this log as it was.
        let generation = self.generation + 1;
        let mut header = [0u8; 24];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&generation.to_le_bytes());
        let sum = checksum(&[&header[..16]]);
        header[16..24].copy_from_slice(&sum.to_le_bytes());
        self.file.write_all_at(&header, 0)?;
        self.file.sync_data()?;
        self.generation = generation;
        self.end = HEADER_BYTES;
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

    /// Keys and values are encoded as one slice (`serde_bytes`); a log an earlier build wrote
    /// element by element must still replay after an upgrade.
    #[test]
    fn ops_keep_the_layout_earlier_builds_wrote() {
        #[derive(Serialize)]
        struct OldOp(u8, Vec<u8>, Option<Vec<u8>>);
        let new = vec![
            op(1),
            Op {
                tree: 2,
                key: vec![5],
                value: None,
            },
        ];
        let old = vec![OldOp(1, vec![1], Some(vec![1; 3])), OldOp(2, vec![5], None)];
        let old_bytes = bincode::serialize(&old).unwrap();
        assert_eq!(bincode::serialize(&new).unwrap(), old_bytes);
        assert_eq!(bincode::deserialize::<Vec<Op>>(&old_bytes).unwrap(), new);
    }

    #[test]
    fn batches_round_trip_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut wal, old) = Wal::open(&path).unwrap();
            assert!(old.is_empty());
            wal.append(&[op(1), op(2)]).unwrap();
            wal.append(&[op(3)]).unwrap();
        }
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, vec![vec![op(1), op(2)], vec![op(3)]]);
        // Appends continue after the replayed records.
        wal.append(&[op(4)]).unwrap();
        let (_, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2], vec![op(4)]);
    }

    #[test]
    fn reset_hides_older_records_even_where_they_remain_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[op(1)]).unwrap();
        wal.append(&[op(2)]).unwrap();
        wal.reset().unwrap();
        // The same size as the old first record, so the old second record (valid, but of the older
        // generation) directly follows it on disk.
        wal.append(&[op(7)]).unwrap();
        drop(wal);
        let (wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(
            batches,
            vec![vec![op(7)]],
            "records of an older generation replayed"
        );
        assert!(wal.len() > 0);
    }

    #[test]
    fn a_torn_or_corrupt_record_ends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[op(1)]).unwrap();
        let second_at = wal.end;
        wal.append(&[op(2)]).unwrap();
        wal.append(&[op(3)]).unwrap();
        drop(wal);
        // Flip a byte of the second record's payload: replay keeps only the first.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, second_at + RECORD_HEADER as u64 + 2)
            .unwrap();
        file.write_all_at(&[byte[0] ^ 0xff], second_at + RECORD_HEADER as u64 + 2)
            .unwrap();
        let (wal, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, vec![vec![op(1)]]);
        assert_eq!(
            wal.end, second_at,
            "the next append overwrites the bad record"
        );
    }

    #[test]
    fn a_damaged_header_starts_a_fresh_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[op(1)]).unwrap();
        drop(wal);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"garbage!", 0).unwrap();
        let (mut wal, batches) = Wal::open(&path).unwrap();
        assert!(batches.is_empty());
        wal.append(&[op(9)]).unwrap();
        let (_, batches) = Wal::open(&path).unwrap();
        assert_eq!(batches, vec![vec![op(9)]]);
    }
}
