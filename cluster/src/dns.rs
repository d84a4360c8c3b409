//! Peer discovery through the StatefulSet's headless service.
//!
//! Kubernetes publishes every ready pod of a headless service in DNS: an A record per pod
//! (`emporium-3.emporium-peers.shop.svc.cluster.local`) and, for a named port, SRV records
//! `_peer._tcp.<service>` whose targets are those pod names. [`Discovery`] turns the answers into
//! a view `ordinal → peer address`; [`Discovery::spawn_refresh`] keeps re-resolving it, keeping
//! the *name* rather than the addresses it once gave (as chitchat's `spawn_dns_refresh_loop`),
//! because every restarted pod may come back on a new IP.
//!
//! The resolver's cache is switched off (every TTL is clamped to zero): the refresh period is
//! the only staleness there is, and CoreDNS caches in front of the API server anyway.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::proto::ProtoError;
use hickory_resolver::{Resolver, TokioResolver};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, instrument, warn};

use crate::identity::{ordinal_from_hostname, statefulset_name};

/// With no SRV records, ordinals are probed one by one; this many misses in a row past the
/// highest ordinal found end the scan (a pod or two in the middle may be restarting).
pub const ORDINAL_SCAN_GAP: u32 = 3;

/// Where and how often to look for peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOptions {
    /// The headless service, e.g. `emporium-peers.shop.svc.cluster.local` (a trailing dot is
    /// optional: the name is always taken as fully qualified, never searched).
    pub service: String,
    /// The StatefulSet's name (pods are `<statefulset>-N.<service>`), used when the service has
    /// no SRV records; [`crate::statefulset_name`] derives it from the pod's own host name.
    pub statefulset: String,
    /// The peer port when the service has no SRV records.
    pub default_port: u16,
    /// A name server to ask instead of the system's (`/etc/resolv.conf`); tests point it at
    /// their own server.
    pub nameserver: Option<SocketAddr>,
    /// How often [`Discovery::spawn_refresh`] re-resolves.
    pub refresh: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {name:?} is not a valid DNS name: {source}")]
    BadName {
        what: &'static str,
        name: String,
        source: ProtoError,
    },
    #[error("the refresh period must be more than zero")]
    ZeroRefresh,
    #[error("cannot read the system's resolver configuration: {0}")]
    SystemConfig(#[source] NetError),
    #[error("cannot build the resolver: {0}")]
    Resolver(#[source] NetError),
    #[error("{record_type} lookup of {name} failed: {source}")]
    Lookup {
        name: String,
        record_type: RecordType,
        source: NetError,
    },
}

/// Resolves the peers of a headless service, once or periodically.
#[derive(Clone)]
pub struct Discovery {
    options: DnsOptions,
    resolver: TokioResolver,
    /// `<service>.`
    service: Name,
    /// `_peer._tcp.<service>.`
    srv: Name,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Checks the names and builds the resolver; does no I/O beyond reading the system
    /// resolver configuration when no name server is given.
    pub fn new(options: DnsOptions) -> Result<Self, Error> {
        if options.refresh.is_zero() {
            return Err(Error::ZeroRefresh);
        }
        let service = fqdn("service", &options.service)?;
        let srv = fqdn("service", &format!("_peer._tcp.{}", options.service))?;
        // The probe names must be valid too; checking one now turns a bad name into a start-up
        // error instead of a failure on every refresh.
        pod_name(&options.statefulset, 0, &service)?;
        let resolver = build_resolver(&options)?;
        Ok(Self {
            options,
            resolver,
            service,
            srv,
        })
    }

    pub fn options(&self) -> &DnsOptions {
        &self.options
    }

    /// The current view: from SRV `_peer._tcp.<service>` if it has records (port from the SRV
    /// record, address from the target's A record), else from the A records of
    /// `<statefulset>-N.<service>` for N = 0, 1, … with the default port. A name that does not
    /// exist or has no records is an empty view, not an error; a server that fails or does not
    /// answer is an error.
    pub async fn resolve_once(&self) -> Result<BTreeMap<u32, SocketAddr>, Error> {
        match self.lookup(&self.srv, RecordType::SRV).await? {
            Some(records) => self.view_from_srv(&records).await,
            None => self.view_by_ordinal().await,
        }
    }

    /// Re-resolves every `refresh` in a task of the current tokio runtime (so call it inside
    /// one) and publishes each view that differs from the last. Until the first answer the view
    /// is empty and unmarked; the first answer is always marked changed, even when empty, so
    /// `changed().await` tells "no peers" from "not asked yet". A failed round keeps the last
    /// good view. The task ends when every receiver is dropped.
    pub fn spawn_refresh(self) -> watch::Receiver<BTreeMap<u32, SocketAddr>> {
        let (tx, rx) = watch::channel(BTreeMap::new());
        tokio::spawn(self.refresh_loop(tx));
        rx
    }

    #[instrument(name = "dns_refresh", skip_all, fields(service = %self.options.service))]
    async fn refresh_loop(self, tx: watch::Sender<BTreeMap<u32, SocketAddr>>) {
        let mut ticks = tokio::time::interval(self.options.refresh);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        let mut answered = false;
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = ticks.tick() => {}
            }
            let resolved = tokio::select! {
                _ = tx.closed() => return,
                resolved = self.resolve_once() => resolved,
            };
            match resolved {
                Ok(view) => {
                    if failing {
                        info!(members = view.len(), "peer lookup works again");
                        failing = false;
                    }
                    let first = !answered;
                    answered = true;
                    tx.send_if_modified(|current| {
                        if *current == view && !first {
                            return false;
                        }
                        info!(members = ?view, "peer set changed");
                        *current = view;
                        true
                    });
                }
                Err(error) if !failing => {
                    warn!(%error, "peer lookup failed; keeping the last peer set until it works again");
                    failing = true;
                }
                Err(error) => debug!(%error, "peer lookup still failing"),
            }
        }
    }

    async fn view_from_srv(&self, records: &[Record]) -> Result<BTreeMap<u32, SocketAddr>, Error> {
        let mut targets: Vec<(u16, u32, u16, &Name)> = records
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) if record.name == self.srv => match self.pod_ordinal(&srv.target) {
                    Some(ordinal) => Some((srv.priority, ordinal, srv.port, &srv.target)),
                    None => {
                        debug!(target = %srv.target, "SRV target is not a pod of our StatefulSet; ignored");
                        None
                    }
                },
                _ => None,
            })
            .collect();
        // One address per ordinal: the most preferred record (lowest priority) wins.
        targets.sort();
        let mut view = BTreeMap::new();
        for (_, ordinal, port, target) in targets {
            if view.contains_key(&ordinal) {
                continue;
            }
            // Servers usually send the targets' A records along (additional section); ask only
            // for those they left out.
            let ip = match lowest_ipv4(records, target) {
                Some(ip) => Some(ip),
                None => self.address_of(target).await?,
            };
            if let Some(ip) = ip {
                view.insert(ordinal, SocketAddr::new(ip, port));
            }
        }
        Ok(view)
    }

    /// The ordinal of `<statefulset>-N.…`; `None` for any other name (pods of other workloads
    /// behind the same service are named after their IP, e.g. `10-1-2-3`, which would otherwise
    /// read as ordinal 3).
    fn pod_ordinal(&self, target: &Name) -> Option<u32> {
        let target = target.to_ascii();
        let ours = statefulset_name(&target)
            .is_some_and(|name| name.eq_ignore_ascii_case(&self.options.statefulset));
        ours.then(|| ordinal_from_hostname(&target)).flatten()
    }

    /// The name's IPv4 address; `None` while it has no A record (a pod that is not ready).
    async fn address_of(&self, name: &Name) -> Result<Option<IpAddr>, Error> {
        Ok(self
            .lookup(name, RecordType::A)
            .await?
            .and_then(|records| lowest_ipv4(&records, name)))
    }

    async fn view_by_ordinal(&self) -> Result<BTreeMap<u32, SocketAddr>, Error> {
        let mut view = BTreeMap::new();
        let mut misses = 0;
        let mut ordinal = 0u32;
        while misses < ORDINAL_SCAN_GAP {
            let name = pod_name(&self.options.statefulset, ordinal, &self.service)?;
            match self.address_of(&name).await? {
                Some(ip) => {
                    view.insert(ordinal, SocketAddr::new(ip, self.options.default_port));
                    misses = 0;
                }
                None => misses += 1,
            }
            let Some(next) = ordinal.checked_add(1) else {
                break;
            };
            ordinal = next;
        }
        Ok(view)
    }

    /// The answer and additional records for `name`; `None` for NXDOMAIN or no answer of that
    /// type.
    async fn lookup(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Option<Vec<Record>>, Error> {
        match self.resolver.lookup(name.clone(), record_type).await {
            Ok(lookup) => {
                let answered = lookup
                    .answers()
                    .iter()
                    .any(|record| record.record_type() == record_type);
                let records = lookup.answers().iter().chain(lookup.additionals());
                Ok(answered.then(|| records.cloned().collect()))
            }
            Err(error) if error.is_no_records_found() => Ok(None),
            Err(source) => Err(Error::Lookup {
                name: name.to_ascii(),
                record_type,
                source,
            }),
        }
    }
}

fn build_resolver(options: &DnsOptions) -> Result<TokioResolver, Error> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match options.nameserver {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![server]), provider)
        }
        None => Resolver::builder(provider).map_err(Error::SystemConfig)?,
    };
    let opts = builder.options_mut();
    // No cache: a view must never be older than one refresh period.
    opts.positive_min_ttl = Some(Duration::ZERO);
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_min_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    // Pod names are the cluster DNS's business; /etc/hosts only knows this pod.
    opts.use_hosts_file = ResolveHosts::Never;
    // A round that outlasts its period only delays the next one; bound each query accordingly.
    opts.timeout = options
        .refresh
        .clamp(Duration::from_secs(1), Duration::from_secs(5));
    opts.attempts = 2;
    builder.build().map_err(Error::Resolver)
}

fn fqdn(what: &'static str, name: &str) -> Result<Name, Error> {
    let mut parsed = Name::from_ascii(name).map_err(|source| Error::BadName {
        what,
        name: name.to_owned(),
        source,
    })?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

fn pod_name(statefulset: &str, ordinal: u32, service: &Name) -> Result<Name, Error> {
    let bad = |source| Error::BadName {
        what: "statefulset",
        name: statefulset.to_owned(),
        source,
    };
    if statefulset.is_empty() || statefulset.contains('.') {
        return Err(bad(ProtoError::from("a StatefulSet name is one label")));
    }
    service
        .prepend_label(format!("{statefulset}-{ordinal}"))
        .map_err(bad)
}

/// The lowest of `name`'s IPv4 addresses among `records`, so that a name with several gives
/// the same answer every round.
fn lowest_ipv4(records: &[Record], name: &Name) -> Option<IpAddr> {
    records
        .iter()
        .filter(|record| record.name == *name)
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .min()
        .map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(service: &str, statefulset: &str) -> DnsOptions {
        DnsOptions {
            service: service.to_owned(),
            statefulset: statefulset.to_owned(),
            default_port: 7070,
            nameserver: Some("127.0.0.1:53".parse().unwrap()),
            refresh: Duration::from_secs(2),
        }
    }

    #[test]
    fn names_are_fully_qualified() {
        let d =
            Discovery::new(options("emporium-peers.shop.svc.cluster.local", "emporium")).unwrap();
        assert_eq!(
            d.srv.to_ascii(),
            "_peer._tcp.emporium-peers.shop.svc.cluster.local."
        );
        assert_eq!(
            pod_name("emporium", 3, &d.service).unwrap().to_ascii(),
            "emporium-3.emporium-peers.shop.svc.cluster.local."
        );
        let dotted = Discovery::new(options(
            "emporium-peers.shop.svc.cluster.local.",
            "emporium",
        ))
        .unwrap();
        assert_eq!(dotted.service, d.service);
    }

    #[test]
    fn bad_options_are_refused_at_start() {
        assert!(matches!(
            Discovery::new(options("a..b", "emporium")),
            Err(Error::BadName {
                what: "service",
                ..
            })
        ));
        assert!(matches!(
            Discovery::new(options("peers.cluster.local", "")),
            Err(Error::BadName {
                what: "statefulset",
                ..
            })
        ));
        assert!(matches!(
            Discovery::new(options("peers.cluster.local", "a.b")),
            Err(Error::BadName {
                what: "statefulset",
                ..
            })
        ));
        let mut zero = options("peers.cluster.local", "emporium");
        zero.refresh = Duration::ZERO;
        assert!(matches!(Discovery::new(zero), Err(Error::ZeroRefresh)));
    }
}
