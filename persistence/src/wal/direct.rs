//! Appends through `O_DIRECT | O_DSYNC`: one write per batch, durable when it returns, without
//! the page cache and its writeback. On this project's VM a write costs 8-35% less CPU that way
//! than a buffered write and `fdatasync` (`scripts/disk-probe.py`; BENCHMARKS.md, "the log writer's cost"), and
//! the log writer shares its core with everything else on the machine.
//!
//! Direct IO wants block-aligned memory, offsets and lengths. The partial block at the end of the
//! log is kept in memory and written again, with the same bytes, in front of the next record, and
//! the last block is padded with zeros; rewriting bytes with themselves cannot tear an
//! acknowledged record.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::MAX_KEPT_BUFFER;

/// The alignment of memory, offsets and lengths: covers 512-byte and 4 KiB logical blocks.
pub(super) const BLOCK: u64 = 4096;

pub(super) struct DirectLog {
    file: File,
    /// Over-allocated by a block; the aligned area starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// The log's bytes from the last block boundary at or before its end, to its end.
    tail: Vec<u8>,
}

impl DirectLog {
    /// `None` where the filesystem refuses direct IO (tmpfs, for one). `tail`: see the field.
    pub fn open(path: &Path, tail: &[u8]) -> Option<Self> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
            .ok()?;
        Some(Self {
            file,
            buf: Vec::new(),
            start: 0,
            tail: tail.to_vec(),
        })
    }

    /// The end of the bytes a write of `len` more bytes at `end` touches.
    pub fn write_end(&self, end: u64, len: usize) -> u64 {
        let block_start = end - self.tail.len() as u64;
        block_start + (self.tail.len() + len).div_ceil(BLOCK as usize) as u64 * BLOCK
    }

    /// Writes `record` at `end`, the log's current end, and returns once it is durable. An
    /// `InvalidInput` error means the device refused direct IO and nothing was written.
    pub fn write(&mut self, end: u64, record: &[u8]) -> io::Result<()> {
        let kept = self.tail.len();
        let block_start = end - kept as u64;
        if block_start % BLOCK != 0 {
            return Err(io::Error::other("log tail out of step with its end"));
        }
        let len = kept + record.len();
        let padded = len.div_ceil(BLOCK as usize) * BLOCK as usize;
        self.reserve(padded);
        let area = &mut self.buf[self.start..self.start + padded];
        area[..kept].copy_from_slice(&self.tail);
        area[kept..len].copy_from_slice(record);
        area[len..].fill(0);
        let written = self.file.write_at(area, block_start)?;
        if written != padded {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short direct write: {written} of {padded} bytes"),
            ));
        }
        let new_tail = len % BLOCK as usize;
        self.tail.clear();
        self.tail.extend_from_slice(&area[len - new_tail..len]);
        if self.buf.len() > MAX_KEPT_BUFFER {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// The log was emptied: its end is at a block boundary again.
    pub fn reset(&mut self) {
        self.tail.clear();
    }

    /// Makes the next writes' memory misaligned, so the kernel refuses them as a device that does
    /// not take direct IO would (`EINVAL`).
    #[cfg(test)]
    pub fn misalign(&mut self) {
        self.reserve(16 * BLOCK as usize);
        // The aligned start made odd: one byte off, still inside the first block.
        self.start ^= 1;
    }

    fn reserve(&mut self, len: usize) {
        if self.buf.len() >= self.start + len {
            return;
        }
        let buf = vec![0u8; len + BLOCK as usize];
        let misaligned = (buf.as_ptr() as usize) % BLOCK as usize;
        self.start = (BLOCK as usize - misaligned) % BLOCK as usize;
        self.buf = buf;
    }
}
