//! The write-ahead log of the sled backend. Each group commit writes one record holding every
//! key/value operation of its batch and makes it durable (one `O_DIRECT | O_DSYNC` write, see
//! [`direct`], or a buffered write and `fdatasync` where the filesystem refuses direct IO): that is
//! the durability point. sled is flushed at checkpoints, after which the log is reset.
//!
//! The file is preallocated with written zeros and records overwrite it in place, so a sync flushes
//! data only: appending would also change the file's size, and every `fdatasync` would then
//! commit a filesystem journal transaction as well. A reset bumps the generation in the header;
//! replay reads records of the header's generation until the first torn, corrupt or stale one.
//!
//! Layout: a header block `[magic 8][generation u64 LE][checksum u64 LE]`, zero-padded to
//! [`HEADER_BYTES`], then records `[len u32 LE][checksum u64 LE][generation u64 LE][payload]`,
//! the checksum covering generation and payload. The magic names the checksum: CRC-32
//! (hardware-assisted, zero-extended to 64 bits) in `EMPWAL02` logs, FNV-1a 64 in the `EMPWAL01`
//! logs of earlier builds, which still replay; a log takes the current magic at its next reset.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod direct;
use direct::DirectLog;

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

/// Written by earlier builds: FNV-1a checksums.
const MAGIC_FNV: &[u8; 8] = b"EMPWAL01";
/// Written now: CRC-32 checksums.
const MAGIC_CRC: &[u8; 8] = b"EMPWAL02";
const HEADER_BYTES: u64 = 4096;
const RECORD_HEADER: usize = 20;
/// The file grows by this much of written zeros whenever a record would not fit.
const PREALLOCATE: u64 = 16 << 20;
/// The largest record replay accepts; a larger length is corruption.
const MAX_RECORD: usize = 1 << 30;
const FORMAT_V1: u8 = 1;
/// The largest buffer an append keeps for the next one.
const MAX_KEPT_BUFFER: usize = 1 << 20;

pub(crate) struct Wal {
    file: File,
    generation: u64,
    /// The checksum of the records in this generation.
    sum: Checksum,
    /// The record being written, reused from append to append.
    record: Vec<u8>,
    /// Appends go through direct IO where the filesystem allows it, else through `file` and
    /// `fdatasync`.
    direct: Option<DirectLog>,
    /// Where the next record goes.
    end: u64,
    capacity: u64,
}

/// Detects torn writes; not a defence against tampering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Fnv1a,
    Crc32,
}

impl Checksum {
    fn of_magic(magic: &[u8]) -> Option<Self> {
        match magic {
            m if m == MAGIC_CRC => Some(Self::Crc32),
            m if m == MAGIC_FNV => Some(Self::Fnv1a),
            _ => None,
        }
    }

    fn of(self, parts: &[&[u8]]) -> u64 {
        match self {
            Self::Crc32 => {
                let mut hasher = crc32fast::Hasher::new();
                parts.iter().for_each(|p| hasher.update(p));
                u64::from(hasher.finalize())
            }
            Self::Fnv1a => parts
                .iter()
                .flat_map(|p| p.iter())
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
                }),
        }
    }
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
        Self::open_with(path, true)
    }

    /// As [`Wal::open`]; `direct: false` appends through the page cache and `fdatasync` only.
    pub fn open_with(path: &Path, direct: bool) -> std::io::Result<(Self, Vec<Vec<Op>>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let sum = bytes.get(..8).and_then(Checksum::of_magic);
        let header_ok = sum.is_some_and(|sum| {
            bytes
                .get(..16)
                .is_some_and(|h| sum.of(&[h]) == u64_at(&bytes, 16))
        });
        let sum = sum.filter(|_| header_ok).unwrap_or(Checksum::Crc32);
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
            let record_generation = u64_at(head, 12);
            if len == 0 || len > MAX_RECORD || record_generation != generation {
                break;
            }
            let Some(payload) = records.get(offset + RECORD_HEADER..offset + RECORD_HEADER + len)
            else {
                break;
            };
            if sum.of(&[&head[12..20], payload]) != u64_at(head, 4) {
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
        let tail_from = at - at % direct::BLOCK as usize;
        let tail = bytes.get(tail_from..at).unwrap_or_default();
        let direct = direct.then(|| DirectLog::open(path, tail)).flatten();
        let mut wal = Self {
            file,
            generation,
            sum,
            record: Vec::new(),
            direct,
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
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        record.resize(RECORD_HEADER, 0);
        record.push(FORMAT_V1);
        let written = bincode::serialize_into(&mut record, ops)
            .map_err(std::io::Error::other)
            .and_then(|()| self.write_record(&mut record));
        // A rare huge batch (a catalog import) does not pin its buffer.
        if record.capacity() <= MAX_KEPT_BUFFER {
            self.record = record;
        }
        written
    }

    /// Fills in the header of `record` (header space, then payload) and writes it durably.
    fn write_record(&mut self, record: &mut [u8]) -> std::io::Result<()> {
        let len = u32::try_from(record.len() - RECORD_HEADER).map_err(std::io::Error::other)?;
        let generation = self.generation.to_le_bytes();
        let sum = self.sum.of(&[&generation, &record[RECORD_HEADER..]]);
        record[..4].copy_from_slice(&len.to_le_bytes());
        record[4..12].copy_from_slice(&sum.to_le_bytes());
        record[12..20].copy_from_slice(&generation);
        // Room for this record and a record header after it (zeros from preallocation, or bytes of
        // an older generation, where replay stops).
        let mut needed = self.end + record.len() as u64 + RECORD_HEADER as u64;
        if let Some(direct) = &self.direct {
            needed = needed.max(direct.write_end(self.end, record.len()));
        }
        if needed > self.capacity {
            self.preallocate(needed + PREALLOCATE)?;
        }
        match self.direct.as_mut().map(|d| d.write(self.end, record)) {
            Some(Ok(())) => {}
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {
                // The filesystem took the flag but not the write: nothing was written.
                tracing::warn!(error = %e, "direct IO refused; the log goes through the page cache");
                self.direct = None;
                self.write_buffered(record)?;
            }
            Some(Err(e)) => return Err(e),
            None => self.write_buffered(record)?,
        }
        self.end += record.len() as u64;
        Ok(())
    }

    fn write_buffered(&self, record: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(record, self.end)?;
        self.file.sync_data()
    }

    /// Whether appends go through direct IO.
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    #[cfg(test)]
    fn direct_mut(&mut self) -> Option<&mut DirectLog> {
        self.direct.as_mut()
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
        // Committed to memory only once on disk: a failed reset leaves this log as it was. A reset
        // log always takes the current checksum.
        let generation = self.generation + 1;
        let mut header = [0u8; 24];
        header[..8].copy_from_slice(MAGIC_CRC);
        header[8..16].copy_from_slice(&generation.to_le_bytes());
        let header_sum = Checksum::Crc32.of(&[&header[..16]]);
        header[16..24].copy_from_slice(&header_sum.to_le_bytes());
        self.file.write_all_at(&header, 0)?;
        self.file.sync_data()?;
        self.generation = generation;
        self.sum = Checksum::Crc32;
        self.end = HEADER_BYTES;
        if let Some(direct) = &mut self.direct {
            direct.reset();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
