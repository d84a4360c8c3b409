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

/// A test run twice, each time on a fresh log path: with appends through direct IO (where the
/// filesystem allows it), then through the page cache.
macro_rules! both_modes {
    ($(#[$doc:meta])* fn $name:ident($path:ident: &Path, $direct:ident: bool) $body:block) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            fn run($path: &Path, $direct: bool) $body
            for direct in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                run(&dir.path().join("wal"), direct);
            }
        }
    };
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn magic_of(path: &Path) -> [u8; 8] {
    let mut magic = [0u8; 8];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut magic, 0)
        .unwrap();
    magic
}

both_modes! {
    /// Bytes an earlier build (`fe402ee`, FNV-1a checksums) wrote: two batches. After an upgrade
    /// they replay, appends continue in that format, and the next reset moves the log to CRC-32.
    fn a_log_an_earlier_build_wrote_replays_and_moves_to_crc_at_reset(path: &Path, direct: bool) {
        const HEADER: &str = "454d5057414c3031412b1376e760060044a73a8c200a5837";
        const RECORDS: &str = "2a00000080e9f4a120783b99412b1376e76006000102000000000000000101000000\
            000000000101030000000000000001010102010000000000000005002800000061786fc4ec236345412b1376\
            e760060001010000000000000000080000000000000063617274006140620105000000000000000909090909";
        let mut bytes = hex(HEADER);
        bytes.resize(HEADER_BYTES as usize, 0);
        bytes.extend(hex(&RECORDS.split_whitespace().collect::<String>()));
        bytes.resize(bytes.len() + 4096, 0);
        std::fs::write(path, &bytes).unwrap();
        let cart = Op {
            tree: 0,
            key: b"cart\0a@b".to_vec(),
            value: Some(vec![9; 5]),
        };
        let second = Op {
            tree: 2,
            key: vec![5],
            value: None,
        };
        let (mut wal, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(
            batches,
            vec![vec![op(1), second.clone()], vec![cart.clone()]]
        );
        wal.append(&[op(3)]).unwrap();
        drop(wal);
        let (mut wal, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches.len(), 3, "an append in the old format was lost");
        assert_eq!(&magic_of(path), MAGIC_FNV);
        wal.reset().unwrap();
        wal.append(&[op(4)]).unwrap();
        drop(wal);
        assert_eq!(&magic_of(path), MAGIC_CRC);
        let (_, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches, vec![vec![op(4)]]);
    }
}

both_modes! {
    /// The checksums really differ: a record is only accepted under its own header's algorithm.
    fn records_are_checked_with_the_checksum_their_header_names(path: &Path, direct: bool) {
        let (mut wal, _) = Wal::open_with(path, direct).unwrap();
        assert_eq!(&magic_of(path), MAGIC_CRC);
        wal.append(&[op(1)]).unwrap();
        let generation = wal.generation;
        drop(wal);
        // The same header under the old magic (with a matching header checksum): the CRC-summed
        // record no longer checks out, so nothing replays.
        let mut header = [0u8; 24];
        header[..8].copy_from_slice(MAGIC_FNV);
        header[8..16].copy_from_slice(&generation.to_le_bytes());
        let sum = Checksum::Fnv1a.of(&[&header[..16]]);
        header[16..].copy_from_slice(&sum.to_le_bytes());
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(&header, 0).unwrap();
        let (_, batches) = Wal::open_with(path, direct).unwrap();
        assert!(batches.is_empty());
    }
}

both_modes! {
    fn batches_round_trip_across_reopen(path: &Path, direct: bool) {
        {
            let (mut wal, old) = Wal::open_with(path, direct).unwrap();
            assert!(old.is_empty());
            wal.append(&[op(1), op(2)]).unwrap();
            wal.append(&[op(3)]).unwrap();
        }
        let (mut wal, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches, vec![vec![op(1), op(2)], vec![op(3)]]);
        // Appends continue after the replayed records.
        wal.append(&[op(4)]).unwrap();
        let (_, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2], vec![op(4)]);
    }
}

both_modes! {
    fn reset_hides_older_records_even_where_they_remain_on_disk(path: &Path, direct: bool) {
        let (mut wal, _) = Wal::open_with(path, direct).unwrap();
        wal.append(&[op(1)]).unwrap();
        wal.append(&[op(2)]).unwrap();
        wal.reset().unwrap();
        // The same size as the old first record, so the old second record (valid, but of the older
        // generation) directly follows it on disk.
        wal.append(&[op(7)]).unwrap();
        drop(wal);
        let (wal, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(
            batches,
            vec![vec![op(7)]],
            "records of an older generation replayed"
        );
        assert!(wal.len() > 0);
    }
}

both_modes! {
    fn a_torn_or_corrupt_record_ends_replay(path: &Path, direct: bool) {
        let (mut wal, _) = Wal::open_with(path, direct).unwrap();
        wal.append(&[op(1)]).unwrap();
        let second_at = wal.end;
        wal.append(&[op(2)]).unwrap();
        wal.append(&[op(3)]).unwrap();
        drop(wal);
        // Flip a byte of the second record's payload: replay keeps only the first.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, second_at + RECORD_HEADER as u64 + 2)
            .unwrap();
        file.write_all_at(&[byte[0] ^ 0xff], second_at + RECORD_HEADER as u64 + 2)
            .unwrap();
        let (wal, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches, vec![vec![op(1)]]);
        assert_eq!(
            wal.end, second_at,
            "the next append overwrites the bad record"
        );
    }
}

both_modes! {
    fn a_damaged_header_starts_a_fresh_log(path: &Path, direct: bool) {
        let (mut wal, _) = Wal::open_with(path, direct).unwrap();
        wal.append(&[op(1)]).unwrap();
        drop(wal);
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(b"garbage!", 0).unwrap();
        let (mut wal, batches) = Wal::open_with(path, direct).unwrap();
        assert!(batches.is_empty());
        wal.append(&[op(9)]).unwrap();
        let (_, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches, vec![vec![op(9)]]);
    }
}

/// Whether the filesystem under `dir` takes `O_DIRECT` (tmpfs does not).
fn direct_io_works(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join("probe"))
        .is_ok()
}

both_modes! {
    /// Records of every size around the block boundaries (the direct log rewrites the partial block
    /// in front of each record), read back after every few appends and after a reset.
    fn records_of_any_size_survive_reopening(path: &Path, direct: bool) {
        let batch = |i: usize| {
            vec![Op {
                tree: 0,
                key: i.to_le_bytes().to_vec(),
                value: Some(vec![i as u8; (i * 397) % 9000]),
            }]
        };
        let mut expected = Vec::new();
        let (mut wal, _) = Wal::open_with(path, direct).unwrap();
        assert_eq!(
            wal.is_direct(),
            direct && direct_io_works(path.parent().unwrap()),
            "direct IO not used where it works, or used where asked not to"
        );
        for i in 0..60 {
            wal.append(&batch(i)).unwrap();
            expected.push(batch(i));
            if i % 7 == 6 {
                drop(wal);
                let (reopened, batches) = Wal::open_with(path, direct).unwrap();
                assert_eq!(batches, expected, "after {} appends", i + 1);
                wal = reopened;
            }
        }
        wal.reset().unwrap();
        wal.append(&batch(3)).unwrap();
        wal.append(&batch(4)).unwrap();
        drop(wal);
        let (_, batches) = Wal::open_with(path, direct).unwrap();
        assert_eq!(batches, vec![batch(3), batch(4)]);
    }
}

/// A device that takes the direct IO flag but refuses the write (`EINVAL`, here from memory the
/// kernel finds misaligned): that append and the later ones go through the page cache, and
/// nothing is lost.
#[test]
fn a_refused_direct_write_falls_back_to_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    if !direct_io_works(dir.path()) {
        eprintln!("skipped: no direct IO on this filesystem");
        return;
    }
    let path = &dir.path().join("wal");
    let (mut wal, _) = Wal::open_with(path, true).unwrap();
    wal.append(&[op(1)]).unwrap();
    wal.direct_mut().unwrap().misalign();
    wal.append(&[op(2)]).unwrap();
    assert!(!wal.is_direct(), "still on direct IO after a refused write");
    wal.append(&[op(3)]).unwrap();
    drop(wal);
    let (_, batches) = Wal::open_with(path, true).unwrap();
    assert_eq!(batches, vec![vec![op(1)], vec![op(2)], vec![op(3)]]);
}
