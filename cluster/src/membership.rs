//! Membership as a stream of typed changes.
//!
//! Discovery (DNS, or the static `EMPORIUM_PEERS` list) produces whole views: ordinal → peer
//! address. What the rest of the cluster acts on is the difference between two views, as
//! [`Change`]s, so a pod that restarts on a new address is an [`Change::Update`] of the same
//! member rather than a remove and an add (Quickwit's `change.rs` does the same for its nodes).

use std::collections::BTreeMap;
use std::net::{AddrParseError, SocketAddr};

/// A peer as discovery sees it: its StatefulSet ordinal and where its peer listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    pub ordinal: u32,
    pub addr: SocketAddr,
}

/// One change between two views of the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// An ordinal that was not there before.
    Add(Member),
    /// An ordinal that is still there at another address (typically a restarted pod).
    Update(Member),
    /// An ordinal that is gone.
    Remove(u32),
}

impl Change {
    pub fn ordinal(&self) -> u32 {
        match self {
            Change::Add(member) | Change::Update(member) => member.ordinal,
            Change::Remove(ordinal) => *ordinal,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("peer entry {position} is empty (peers are ORDINAL=IP:PORT separated by commas)")]
    EmptyEntry { position: usize },
    #[error("peer entry {entry:?} is not ORDINAL=IP:PORT")]
    NotAnAssignment { entry: String },
    #[error("peer entry {entry:?} has no valid ordinal (a number from 0 to {max})", max = u32::MAX)]
    BadOrdinal { entry: String },
    #[error("peer entry {entry:?} has no valid IP:PORT address: {source}")]
    BadAddress {
        entry: String,
        source: AddrParseError,
    },
    #[error("peer entry {entry:?} repeats ordinal {ordinal}")]
    DuplicateOrdinal { entry: String, ordinal: u32 },
}

/// The changes that turn view `old` into view `new`, in ascending ordinal order; empty when the
/// views are equal.
pub fn diff(old: &BTreeMap<u32, SocketAddr>, new: &BTreeMap<u32, SocketAddr>) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut old_iter = old.iter().peekable();
    let mut new_iter = new.iter().peekable();
    loop {
        let change = match (old_iter.peek(), new_iter.peek()) {
            (None, None) => break,
            (Some((&ordinal, _)), None) => {
                old_iter.next();
                Some(Change::Remove(ordinal))
            }
            (None, Some((&ordinal, &addr))) => {
                new_iter.next();
                Some(Change::Add(Member { ordinal, addr }))
            }
            (Some((&old_ordinal, &old_addr)), Some((&new_ordinal, &new_addr))) => {
                if old_ordinal < new_ordinal {
                    old_iter.next();
                    Some(Change::Remove(old_ordinal))
                } else if new_ordinal < old_ordinal {
                    new_iter.next();
                    Some(Change::Add(Member {
                        ordinal: new_ordinal,
                        addr: new_addr,
                    }))
                } else {
                    old_iter.next();
                    new_iter.next();
                    (old_addr != new_addr).then_some(Change::Update(Member {
                        ordinal: new_ordinal,
                        addr: new_addr,
                    }))
                }
            }
        };
        changes.extend(change);
    }
    changes
}

/// Parses the static peer list of `EMPORIUM_PEERS`: `0=127.0.0.11:7070,1=127.0.0.12:7070`.
///
/// Whitespace around entries, ordinals and addresses is ignored. Every entry must be
/// `ORDINAL=IP:PORT` (IPv6 as `[::1]:7070`); an empty entry (including a trailing comma), a
/// repeated ordinal or an address that does not parse is an error naming the entry, since a
/// typo here would silently split the cluster.
pub fn parse_static(list: &str) -> Result<BTreeMap<u32, SocketAddr>, Error> {
    let mut peers = BTreeMap::new();
    for (index, raw) in list.split(',').enumerate() {
        let entry = raw.trim();
        if entry.is_empty() {
            return Err(Error::EmptyEntry {
                position: index + 1,
            });
        }
        let Some((ordinal, addr)) = entry.split_once('=') else {
            return Err(Error::NotAnAssignment {
                entry: entry.to_owned(),
            });
        };
        let ordinal = ordinal.trim();
        let ordinal = ordinal
            .parse::<u32>()
            .ok()
            .filter(|_| ordinal.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Error::BadOrdinal {
                entry: entry.to_owned(),
            })?;
        let addr = addr
            .trim()
            .parse::<SocketAddr>()
            .map_err(|source| Error::BadAddress {
                entry: entry.to_owned(),
                source,
            })?;
        if peers.insert(ordinal, addr).is_some() {
            return Err(Error::DuplicateOrdinal {
                entry: entry.to_owned(),
                ordinal,
            });
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn view(entries: &[(u32, &str)]) -> BTreeMap<u32, SocketAddr> {
        entries.iter().map(|&(o, a)| (o, addr(a))).collect()
    }

    #[test]
    fn diff_of_equal_views_is_empty() {
        let v = view(&[(0, "127.0.0.11:7070"), (1, "127.0.0.12:7070")]);
        assert_eq!(diff(&v, &v), vec![]);
        assert_eq!(diff(&BTreeMap::new(), &BTreeMap::new()), vec![]);
    }

    #[test]
    fn diff_names_adds_updates_and_removes_in_ordinal_order() {
        let old = view(&[
            (0, "127.0.0.11:7070"),
            (1, "127.0.0.12:7070"),
            (3, "127.0.0.14:7070"),
        ]);
        let new = view(&[
            (0, "127.0.0.11:7070"),
            (1, "127.0.0.99:7070"),
            (2, "127.0.0.13:7070"),
            (5, "127.0.0.16:7070"),
        ]);
        assert_eq!(
            diff(&old, &new),
            vec![
                Change::Update(Member {
                    ordinal: 1,
                    addr: addr("127.0.0.99:7070")
                }),
                Change::Add(Member {
                    ordinal: 2,
                    addr: addr("127.0.0.13:7070")
                }),
                Change::Remove(3),
                Change::Add(Member {
                    ordinal: 5,
                    addr: addr("127.0.0.16:7070")
                }),
            ]
        );
    }

    #[test]
    fn diff_from_and_to_nothing() {
        let v = view(&[(0, "127.0.0.11:7070"), (4, "127.0.0.15:7070")]);
        let adds = diff(&BTreeMap::new(), &v);
        assert_eq!(
            adds.iter().map(Change::ordinal).collect::<Vec<_>>(),
            vec![0, 4]
        );
        assert!(adds.iter().all(|c| matches!(c, Change::Add(_))));
        assert_eq!(
            diff(&v, &BTreeMap::new()),
            vec![Change::Remove(0), Change::Remove(4)]
        );
    }

    #[test]
    fn static_list_parses_with_whitespace() {
        assert_eq!(
            parse_static("0=127.0.0.11:7070,1=127.0.0.12:7070").unwrap(),
            view(&[(0, "127.0.0.11:7070"), (1, "127.0.0.12:7070")])
        );
        assert_eq!(
            parse_static(" 2 = 127.0.0.13:7071 ,\n 0=[::1]:7070\t").unwrap(),
            view(&[(0, "[::1]:7070"), (2, "127.0.0.13:7071")])
        );
    }

    #[test]
    fn static_list_refuses_empty_entries() {
        assert_eq!(parse_static(""), Err(Error::EmptyEntry { position: 1 }));
        assert_eq!(parse_static("  "), Err(Error::EmptyEntry { position: 1 }));
        assert_eq!(
            parse_static("0=127.0.0.11:7070,"),
            Err(Error::EmptyEntry { position: 2 })
        );
        assert_eq!(
            parse_static("0=127.0.0.11:7070, ,1=127.0.0.12:7070"),
            Err(Error::EmptyEntry { position: 2 })
        );
    }

    #[test]
    fn static_list_errors_name_the_entry() {
        let cases = [
            ("0=127.0.0.11:7070,127.0.0.12:7070", "127.0.0.12:7070"),
            ("x=127.0.0.11:7070", "x=127.0.0.11:7070"),
            ("-1=127.0.0.11:7070", "-1=127.0.0.11:7070"),
            ("+1=127.0.0.11:7070", "+1=127.0.0.11:7070"),
            ("=127.0.0.11:7070", "=127.0.0.11:7070"),
            ("0=127.0.0.11", "0=127.0.0.11"),
            ("0=emporium-0:7070", "0=emporium-0:7070"),
            ("0=127.0.0.11:99999", "0=127.0.0.11:99999"),
            ("0=", "0="),
            (
                "0=127.0.0.11:7070,1=127.0.0.12:7070,0=127.0.0.13:7070",
                "0=127.0.0.13:7070",
            ),
        ];
        for (list, entry) in cases {
            let err = parse_static(list).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{entry:?}")),
                "{list:?}: {err}"
            );
        }
        assert!(matches!(
            parse_static("0=127.0.0.11:7070, 0 = 127.0.0.12:7070"),
            Err(Error::DuplicateOrdinal { ordinal: 0, .. })
        ));
    }
}
