//! Cluster mode: the settings that turn it on (checked at start, with messages naming the
//! setting), and the glue between the engine and `emporium_cluster`: the shard table the engine
//! routes through, the member's control loop, the peer listener (forwarded commands and
//! ownership news) and the forwarder the engine sends through.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use emporium_cluster::{HoldOptions, Ownership, ShardMap};

use crate::config::{Config, StoreKind};

/// How peers are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// `EMPORIUM_PEERS`: every ordinal and its peer address.
    Static(BTreeMap<u32, SocketAddr>),
    /// `EMPORIUM_PEER_DNS`: the headless service, re-resolved every couple of seconds.
    Dns {
        service: String,
        statefulset: String,
        port: u16,
        nameserver: Option<SocketAddr>,
    },
}

/// Cluster settings, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ordinal: u32,
    pub peers: Peers,
    pub peer_listen: SocketAddr,
    /// Where other nodes reach this one (recorded in the store, shown by `/admin/cluster`).
    pub advertise: String,
    pub secret: String,
    pub claim_ttl: Duration,
}

const DEFAULT_PEER_LISTEN: &str = "0.0.0.0:7070";

impl Settings {
    /// `None` when no cluster setting is given: one node, exactly as without a cluster.
    pub fn from_config(c: &Config) -> Result<Option<Self>, String> {
        let hostname = std::env::var("HOSTNAME").ok();
        Self::resolve(c, hostname.as_deref())
    }

    fn resolve(c: &Config, hostname: Option<&str>) -> Result<Option<Self>, String> {
        let (peers, dns) = (c.peers.as_deref(), c.peer_dns.as_deref());
        if peers.is_none() && dns.is_none() {
            if c.cluster_secret.is_some() || c.peer_listen.is_some() || c.peer_dns_server.is_some()
            {
                return Err(
                    "cluster_secret, peer_listen and peer_dns_server need a way to find \
                            the peers: set EMPORIUM_PEER_DNS (the headless service) or \
                            EMPORIUM_PEERS (a static list)"
                        .into(),
                );
            }
            return Ok(None);
        }
        if peers.is_some() && dns.is_some() {
            return Err("set one of EMPORIUM_PEERS and EMPORIUM_PEER_DNS, not both".into());
        }
        if c.store_kind()? == StoreKind::Sled {
            return Err(
                "a cluster needs a shared store: with EMPORIUM_STORE=sled every node \
                        would keep its own data; set EMPORIUM_STORE to a mongodb:// URI"
                    .into(),
            );
        }
        let secret = c.cluster_secret.clone().unwrap_or_default();
        if secret.len() < 16 {
            return Err(
                "EMPORIUM_CLUSTER_SECRET must be set to at least 16 bytes in cluster mode: \
                 every peer connection is authenticated with it"
                    .into(),
            );
        }
        let ordinal = match (c.node_ordinal, hostname) {
            (Some(o), _) => o,
            (None, Some(h)) => emporium_cluster::ordinal_from_hostname(h).ok_or_else(|| {
                format!(
                    "cannot tell this node's ordinal from HOSTNAME {h:?} (expected a StatefulSet \
                     pod name such as emporium-3); set EMPORIUM_NODE_ORDINAL"
                )
            })?,
            (None, None) => {
                return Err(
                    "cannot tell this node's ordinal: set EMPORIUM_NODE_ORDINAL or \
                            HOSTNAME (a StatefulSet pod name such as emporium-3)"
                        .into(),
                )
            }
        };
        if !(2..=300).contains(&c.claim_ttl_secs) {
            return Err("claim_ttl_secs must be between 2 and 300".into());
        }
        let listen = c.peer_listen.as_deref().unwrap_or(DEFAULT_PEER_LISTEN);
        let peer_listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("peer_listen {listen:?} is not an address like 0.0.0.0:7070"))?;
        if peer_listen == c.listen_addr()? {
            return Err(
                "peer_listen must differ from listen: the API port never takes peer \
                        messages"
                    .into(),
            );
        }
        let nameserver = match &c.peer_dns_server {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                format!("peer_dns_server {s:?} is not an address like 10.0.0.10:53")
            })?),
        };
        let (peers, advertise) = match (peers, dns) {
            (Some(list), _) => {
                let map =
                    emporium_cluster::parse_static(list).map_err(|e| format!("peers: {e}"))?;
                let own = map.get(&ordinal).ok_or_else(|| {
                    format!("EMPORIUM_PEERS has no entry for this node's ordinal {ordinal}")
                })?;
                (Peers::Static(map.clone()), own.to_string())
            }
            (None, Some(service)) => {
                let service = service.trim().trim_end_matches('.').to_owned();
                if service.is_empty() {
                    return Err("peer_dns is empty".into());
                }
                let statefulset = hostname
                    .and_then(emporium_cluster::statefulset_name)
                    .unwrap_or("emporium")
                    .to_owned();
                let advertise = format!("{statefulset}-{ordinal}.{service}:{}", peer_listen.port());
                let peers = Peers::Dns {
                    service,
                    statefulset,
                    port: peer_listen.port(),
                    nameserver,
                };
                (peers, advertise)
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Self {
            ordinal,
            peers,
            peer_listen,
            advertise,
            secret,
            claim_ttl: Duration::from_secs(c.claim_ttl_secs),
        }))
    }
}

/// The shard table this node starts with: every shard its own on one node; unknown until the
/// store is read in a cluster.
pub fn ownership(config: &Config, settings: Option<&Settings>) -> anyhow::Result<Ownership> {
    let map = ShardMap::new(config.shards).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match settings {
        None => Ownership::single_node(map),
        Some(s) => Ownership::cluster(map, s.ordinal, HoldOptions::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> Config {
        let mut c = Config {
            store: "mongodb://127.0.0.1:27017/shop".into(),
            ..Config::default()
        };
        for (k, v) in env {
            match *k {
                "peers" => c.peers = Some((*v).into()),
                "peer_dns" => c.peer_dns = Some((*v).into()),
                "secret" => c.cluster_secret = Some((*v).into()),
                "ordinal" => c.node_ordinal = v.parse().ok(),
                "store" => c.store = (*v).into(),
                "peer_listen" => c.peer_listen = Some((*v).into()),
                _ => panic!("{k}"),
            }
        }
        c
    }

    const SECRET: &str = "0123456789abcdef";

    #[test]
    fn no_cluster_settings_means_one_node() {
        assert_eq!(
            Settings::resolve(&Config::default(), Some("emporium-2")),
            Ok(None)
        );
    }

    #[test]
    fn the_ordinal_comes_from_the_host_name_unless_set() {
        let c = config(&[
            ("peer_dns", "emporium-peers.shop.svc.cluster.local."),
            ("secret", SECRET),
        ]);
        let s = Settings::resolve(&c, Some("emporium-3")).unwrap().unwrap();
        assert_eq!(s.ordinal, 3);
        assert_eq!(
            s.advertise,
            "emporium-3.emporium-peers.shop.svc.cluster.local:7070"
        );
        assert_eq!(s.peer_listen, "0.0.0.0:7070".parse().unwrap());
        let c = config(&[("peer_dns", "p.svc"), ("secret", SECRET), ("ordinal", "5")]);
        assert_eq!(
            Settings::resolve(&c, Some("emporium-3"))
                .unwrap()
                .unwrap()
                .ordinal,
            5
        );
    }

    #[test]
    fn a_static_list_names_this_node() {
        let c = config(&[
            ("peers", "0=127.0.0.11:7070,1=127.0.0.12:7070"),
            ("secret", SECRET),
            ("ordinal", "1"),
        ]);
        let s = Settings::resolve(&c, None).unwrap().unwrap();
        assert_eq!(s.advertise, "127.0.0.12:7070");
        let c = config(&[
            ("peers", "0=127.0.0.11:7070"),
            ("secret", SECRET),
            ("ordinal", "1"),
        ]);
        let err = Settings::resolve(&c, None).unwrap_err();
        assert!(err.contains("no entry for this node's ordinal 1"), "{err}");
    }

    #[test]
    fn bad_cluster_settings_stop_the_start_with_a_message() {
        for (env, host, says) in [
            (
                vec![
                    ("peers", "0=127.0.0.11:7070"),
                    ("secret", SECRET),
                    ("ordinal", "0"),
                    ("store", "sled"),
                ],
                None,
                "shared store",
            ),
            (
                vec![("peers", "0=127.0.0.11:7070"), ("ordinal", "0")],
                None,
                "CLUSTER_SECRET",
            ),
            (
                vec![
                    ("peers", "0=127.0.0.11:7070"),
                    ("secret", "short"),
                    ("ordinal", "0"),
                ],
                None,
                "CLUSTER_SECRET",
            ),
            (
                vec![("peers", "0=127.0.0.11:7070"), ("secret", SECRET)],
                Some("web"),
                "ordinal",
            ),
            (
                vec![("peers", "0=127.0.0.11:7070"), ("secret", SECRET)],
                None,
                "NODE_ORDINAL",
            ),
            (
                vec![("peers", "0=nowhere"), ("secret", SECRET), ("ordinal", "0")],
                None,
                "peers",
            ),
            (
                vec![
                    ("peers", "0=127.0.0.11:7070"),
                    ("peer_dns", "x.svc"),
                    ("secret", SECRET),
                    ("ordinal", "0"),
                ],
                None,
                "not both",
            ),
            (vec![("secret", SECRET)], None, "find the peers"),
            (
                vec![
                    ("peers", "0=127.0.0.11:7070"),
                    ("secret", SECRET),
                    ("ordinal", "0"),
                    ("peer_listen", "127.0.0.1:8080"),
                ],
                None,
                "differ",
            ),
        ] {
            let err = Settings::resolve(&config(&env), host).unwrap_err();
            assert!(err.contains(says), "{env:?}: {err}");
        }
    }
}
