//! The snapshot memtable: the values written since the last checkpoint, which readers consult
//! before sled, and the keys known to be in neither, so that reading something that does not
//! exist again and again (the stock of an untracked SKU, on every add to a cart) skips sled.
//! Only the writer thread adds values or spills them; readers may mark a key absent.

/// The most keys remembered as absent; past it the set starts over (a client asking for many
/// ids that do not exist cannot grow it without bound).
const MAX_ABSENT: usize = 16_384;

#[derive(Default)]
pub(super) struct Memtable {
    values: foldhash::HashMap<Vec<u8>, Vec<u8>>,
    absent: foldhash::HashSet<Vec<u8>>,
    /// Spills so far, so a reader can tell whether one ran while it read sled.
    spills: u64,
}

/// What the memtable knows of a key.
pub(super) enum Known<'a> {
    Value(&'a [u8]),
    Absent,
    /// Read sled; if sled lacks the key too, call [`Memtable::mark_absent`] with `spills`.
    Unknown {
        spills: u64,
    },
}

impl Memtable {
    pub fn lookup(&self, key: &[u8]) -> Known<'_> {
        if let Some(value) = self.values.get(key) {
            return Known::Value(value);
        }
        if self.absent.contains(key) {
            return Known::Absent;
        }
        Known::Unknown {
            spills: self.spills,
        }
    }

    /// Remembers that `key` was in neither the memtable (at the lookup that returned `spills`)
    /// nor sled (read after it). Ignored if the key was written since, or if a spill ran since:
    /// then a value the lookup missed may have reached sled only after the sled read.
    pub fn mark_absent(&mut self, key: &[u8], spills: u64) {
        if spills != self.spills || self.values.contains_key(key) {
            return;
        }
        if self.absent.len() >= MAX_ABSENT {
            self.absent.clear();
        }
        self.absent.insert(key.to_vec());
    }

    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.absent.remove(&key);
        self.values.insert(key, value);
    }

    pub fn values(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.values.iter()
    }

    /// Forgets the values once sled has every one of them.
    pub fn spilled(&mut self) {
        self.values.clear();
        self.spills += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(m: &Memtable, key: &[u8]) -> &'static str {
        match m.lookup(key) {
            Known::Value(_) => "value",
            Known::Absent => "absent",
            Known::Unknown { .. } => "unknown",
        }
    }

    fn spills_at_lookup(m: &Memtable, key: &[u8]) -> u64 {
        match m.lookup(key) {
            Known::Unknown { spills } => spills,
            _ => panic!("expected an unknown key"),
        }
    }

    #[test]
    fn a_missing_key_is_remembered_until_written() {
        let mut m = Memtable::default();
        let seen = spills_at_lookup(&m, b"inventory/SKU-1");
        m.mark_absent(b"inventory/SKU-1", seen);
        assert_eq!(known(&m, b"inventory/SKU-1"), "absent");
        m.insert(b"inventory/SKU-1".to_vec(), b"v1".to_vec());
        assert_eq!(known(&m, b"inventory/SKU-1"), "value");
        // Once spilled the value is in sled, and the key must not read as absent.
        m.spilled();
        assert_eq!(known(&m, b"inventory/SKU-1"), "unknown");
    }

    #[test]
    fn a_write_between_the_lookup_and_the_mark_wins() {
        let mut m = Memtable::default();
        let seen = spills_at_lookup(&m, b"k");
        m.insert(b"k".to_vec(), b"v".to_vec()); // written while the reader read sled
        m.mark_absent(b"k", seen);
        assert_eq!(known(&m, b"k"), "value");
    }

    #[test]
    fn a_spill_between_the_lookup_and_the_mark_wins() {
        let mut m = Memtable::default();
        let seen = spills_at_lookup(&m, b"k");
        // Written and spilled to sled while the reader's sled read (which missed) was under way.
        m.insert(b"k".to_vec(), b"v".to_vec());
        m.spilled();
        m.mark_absent(b"k", seen);
        assert_eq!(
            known(&m, b"k"),
            "unknown",
            "would hide a value sled now has"
        );
    }

    #[test]
    fn the_absent_set_is_bounded() {
        let mut m = Memtable::default();
        for i in 0..MAX_ABSENT + 10 {
            let key = format!("order/{i}").into_bytes();
            let seen = spills_at_lookup(&m, &key);
            m.mark_absent(&key, seen);
        }
        assert!(m.absent.len() <= MAX_ABSENT);
    }
}
