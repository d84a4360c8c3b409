//! Command-line options, users, nodes and process CPU.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use emporium_cluster::ShardMap;

use super::conn::{Kind, User};
use super::Result;

/// Command-line options: `--name value`, repeatable.
pub(crate) struct Opts(BTreeMap<String, Vec<String>>);

impl Opts {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| format!("expected an option, got {a:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.entry(name.to_owned()).or_default().push(value.clone());
        }
        Ok(Self(map))
    }
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(|v| v.last().cloned())
    }
    pub(crate) fn need(&self, name: &str) -> Result<String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }
    pub(crate) fn num<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> Result<T> {
        match self.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?}: not a number")),
            None => default.ok_or_else(|| format!("--{name} is required")),
        }
    }
    pub(crate) fn kind(&self) -> Result<Kind> {
        match self.get("request").as_deref() {
            None | Some("add") => Ok(Kind::Add),
            Some("read") => Ok(Kind::Read),
            Some(k) => Err(format!("--request {k}: add or read")),
        }
    }
}

pub(crate) fn read_file(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// The users, each with its owner when `--owners` and `--shards` are given.
pub(crate) fn load_users(o: &Opts) -> Result<Vec<User>> {
    let owners: Option<(ShardMap, Vec<u32>)> = match o.get("owners") {
        None => None,
        Some(path) => {
            let shards: u32 = o.num("shards", None)?;
            let map = ShardMap::new(shards).map_err(|e| e.to_string())?;
            let mut table = vec![u32::MAX; shards as usize];
            for line in read_file(&path)?.lines() {
                let mut w = line.split_whitespace();
                let (Some(s), Some(owner)) = (w.next(), w.next()) else {
                    continue;
                };
                let s: usize = s
                    .parse()
                    .map_err(|_| format!("{path}: bad line {line:?}"))?;
                let owner: u32 = owner
                    .parse()
                    .map_err(|_| format!("{path}: shard {s} has no owner ({line:?})"))?;
                *table
                    .get_mut(s)
                    .ok_or_else(|| format!("{path}: shard {s} >= {shards}"))? = owner;
            }
            if let Some(s) = table.iter().position(|o| *o == u32::MAX) {
                return Err(format!("{path}: shard {s} has no owner"));
            }
            Some((map, table))
        }
    };
    let text = read_file(&o.need("users")?)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (email, token) = line
                .split_once(' ')
                .ok_or_else(|| format!("users: expected `email token`, got {line:?}"))?;
            let owner = owners
                .as_ref()
                .map(|(map, table)| table[map.shard_of(email.as_bytes()).0 as usize]);
            Ok(User {
                email: email.to_owned(),
                token: token.trim().to_owned(),
                owner,
            })
        })
        .collect()
}

/// `--node ORD=ADDR`, repeatable.
pub(crate) fn load_nodes(o: &Opts) -> Result<BTreeMap<u32, SocketAddr>> {
    o.all("node")
        .iter()
        .map(|n| {
            let (ord, addr) = n
                .split_once('=')
                .ok_or_else(|| format!("--node {n}: ORD=ADDR"))?;
            Ok((
                ord.parse()
                    .map_err(|_| format!("--node {n}: bad ordinal"))?,
                addr.parse()
                    .map_err(|_| format!("--node {n}: bad address"))?,
            ))
        })
        .collect()
}

pub(crate) fn cpu_ticks(pid: &str) -> Result<u64> {
    let stat = read_file(&format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(n(11) + n(12))
}
