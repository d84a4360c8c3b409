//! A cluster member: registers its generation in the shared store, keeps its lease (its claim to
//! the shards it owns) renewed, and reconciles ownership with what [`reconcile::plan`] says:
//! claiming the shards it should own, handing off those it should not (hold new commands →
//! drain the ones in flight → passivate the actors → one conditional transfer in the store →
//! tell the peers), and learning of other nodes' changes from the store and from their notices.
//!
//! Two loops run on the caller's `LocalSet` (the actix main arbiter): the lease renewal, which
//! nothing else may delay, and the reconciler.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emporium_persistence::{Leases, NodeRecord, ShardRecord};
use tokio::sync::{watch, Notify};

use crate::handoff::{Action, Event};
use crate::ownership::Ownership;
use crate::peer::{PeerClient, PeerClientOptions};
use crate::reconcile::{self, node_ref, Plan, View};
use crate::shard_map::{Epoch, NodeId, ShardId};
use crate::stats::{HandoffRecord, NodeStats};
use crate::wire::{Notice, OwnerChange, PeerRequest};

mod handoffs;
mod peers;

/// How a member runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub ordinal: u32,
    /// The peer address other nodes reach this one at (recorded in the store).
    pub advertise: String,
    pub secret: Vec<u8>,
    /// How long a claim lasts without renewal; a dead node's shards move after this.
    pub claim_ttl: Duration,
    /// How often ownership is reconciled without a nudge.
    pub reconcile_every: Duration,
    /// How long a handoff waits for the commands in flight on a shard.
    pub drain_bound: Duration,
    /// Peer request timeout (a forwarded command, a notice).
    pub request_timeout: Duration,
}

/// What the cluster needs from the engine: dropping the actors of shards that leave this node.
pub trait ShardHost: Send + Sync + 'static {
    fn passivate(&self, shards: &HashSet<ShardId>);
}

#[derive(Default)]
struct Known {
    nodes: Vec<NodeRecord>,
    records: Vec<ShardRecord>,
    discovered: BTreeMap<u32, SocketAddr>,
    /// The address the peer link uses for each peer.
    peers: BTreeMap<u32, SocketAddr>,
    shards_read: Option<Instant>,
}

struct Inner {
    options: NodeOptions,
    ownership: Ownership,
    leases: Arc<dyn Leases>,
    client: PeerClient,
    host: Arc<dyn ShardHost>,
    leaving: AtomicBool,
    superseded: watch::Sender<bool>,
    wake: Notify,
    /// A full re-read of the shard records is due (set by peers' membership news).
    reread: AtomicBool,
    known: Mutex<Known>,
    history: Mutex<VecDeque<HandoffRecord>>,
    stats: NodeStats,
    started_ms: AtomicU64,
}

/// A cheap-to-clone handle to this node's membership.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How often the full shard table is re-read from the store (peers' notices keep it current in
/// between).
const SHARDS_REREAD: Duration = Duration::from_secs(2);

impl Node {
    /// Registers a new generation of this ordinal and starts the loops (call inside a `LocalSet`).
    pub async fn start(
        options: NodeOptions,
        ownership: Ownership,
        leases: Arc<dyn Leases>,
        host: Arc<dyn ShardHost>,
        discovery: watch::Receiver<BTreeMap<u32, SocketAddr>>,
    ) -> Result<Self, emporium_persistence::Error> {
        let count = ownership.map().shard_count();
        leases.ensure_shards(count).await?;
        let sent = Instant::now();
        let record = leases
            .register(
                options.ordinal,
                &options.advertise,
                wall_ms() + millis(options.claim_ttl),
            )
            .await?;
        ownership.set_generation(record.generation);
        ownership.set_claim_until(sent + claim_window(options.claim_ttl));
        let client = PeerClient::new(PeerClientOptions {
            secret: options.secret.clone(),
            ordinal: options.ordinal,
            generation: record.generation,
            connect_timeout: Duration::from_millis(500),
            request_timeout: options.request_timeout,
            max_in_flight_per_peer: 4096,
        });
        tracing::info!(
            ordinal = options.ordinal,
            generation = record.generation,
            superseded_until_ms = record.superseded_until_ms,
            "registered in the cluster"
        );
        let node = Self(Arc::new(Inner {
            options,
            ownership,
            leases,
            client,
            host,
            leaving: AtomicBool::new(false),
            superseded: watch::channel(false).0,
            wake: Notify::new(),
            reread: AtomicBool::new(true),
            known: Mutex::new(Known::default()),
            history: Mutex::new(VecDeque::new()),
            stats: NodeStats::default(),
            started_ms: AtomicU64::new(wall_ms()),
        }));
        tokio::task::spawn_local(node.clone().renew_loop());
        tokio::task::spawn_local(node.clone().discovery_loop(discovery));
        tokio::task::spawn_local(node.clone().reconcile_loop());
        Ok(node)
    }

    pub fn me(&self) -> NodeId {
        self.0.ownership.me()
    }

    pub fn ownership(&self) -> &Ownership {
        &self.0.ownership
    }

    /// The peer connections (the engine's forwarder sends through them).
    pub fn client(&self) -> &PeerClient {
        &self.0.client
    }

    pub fn stats(&self) -> &NodeStats {
        &self.0.stats
    }

    pub fn is_leaving(&self) -> bool {
        self.0.leaving.load(Ordering::Acquire)
    }

    /// Resolves if a newer generation of this ordinal registered: this process must stop.
    pub async fn superseded(&self) {
        let mut rx = self.0.superseded.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reconcile now (peers' news, membership changes).
    pub fn nudge(&self) {
        self.0.wake.notify_one();
    }

    /// News from a peer.
    pub fn on_notice(&self, notice: Notice) {
        match notice {
            Notice::Ownership { changes } => {
                let lost = self.apply_changes(&changes);
                self.passivate(lost);
            }
            Notice::Membership { .. } => {
                self.0.reread.store(true, Ordering::Release);
            }
            Notice::Catalog => return,
        }
        self.nudge();
    }

    /// Feeds ownership records to the table; returns the shards whose actors must go.
    fn apply_changes(&self, changes: &[OwnerChange]) -> HashSet<ShardId> {
        let mut lost = HashSet::new();
        for c in changes {
            let owner = c.owner.map(|ordinal| NodeId {
                ordinal,
                generation: c.generation,
            });
            let event = Event::Record {
                owner,
                epoch: Epoch(c.epoch),
            };
            if self.0.ownership.apply(ShardId(c.shard), event) == Some(Action::Passivate) {
                lost.insert(ShardId(c.shard));
            }
        }
        lost
    }

    fn passivate(&self, shards: HashSet<ShardId>) {
        if !shards.is_empty() {
            self.0.host.passivate(&shards);
        }
    }

    /// Leaves the cluster (SIGTERM): stops counting itself a member, hands every shard to its
    /// stand-in, and resolves once it owns none (or after `bound`).
    pub async fn leave(&self, bound: Duration) -> bool {
        self.0.leaving.store(true, Ordering::Release);
        self.renew_now().await;
        self.broadcast(PeerRequest::Notify(Notice::Membership {
            ordinal: self.me().ordinal,
            generation: self.me().generation,
            leaving: true,
        }))
        .await;
        self.nudge();
        let deadline = tokio::time::Instant::now() + bound;
        // A peer that read the membership just before this node said it was leaving may still
        // hand it shards: done only once it has owned nothing for a few reconcile rounds.
        let settle = self.0.options.reconcile_every * 4;
        let mut empty_since: Option<tokio::time::Instant> = None;
        loop {
            let now = tokio::time::Instant::now();
            if self.0.ownership.owned().is_empty() {
                let since = *empty_since.get_or_insert(now);
                if now.duration_since(since) >= settle {
                    return true;
                }
            } else {
                empty_since = None;
            }
            if now >= deadline {
                return false;
            }
            self.0
                .ownership
                .changed_within(Duration::from_millis(100))
                .await;
        }
    }

    async fn renew_now(&self) -> bool {
        // A claim that lapsed (this process was paused, or could not reach the store) is given
        // up before it is renewed: the shards may have moved meanwhile, and the table must be
        // re-read before any of them is served again.
        if !self.0.ownership.claim_valid() {
            self.lapse();
        }
        let sent = Instant::now();
        let ttl = self.0.options.claim_ttl;
        let me = node_ref(self.me());
        match self
            .0
            .leases
            .renew(me, wall_ms() + millis(ttl), self.is_leaving())
            .await
        {
            Ok(true) => {
                self.0.ownership.set_claim_until(sent + claim_window(ttl));
                true
            }
            Ok(false) => {
                tracing::error!(
                    ordinal = me.ordinal,
                    generation = me.generation,
                    "a newer generation of this ordinal registered; giving up every shard"
                );
                self.0.superseded.send_replace(true);
                self.0.ownership.set_claim_until(Instant::now());
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing this node's claim failed");
                false
            }
        }
    }

    async fn renew_loop(self) {
        let every = self.0.options.claim_ttl / 4;
        loop {
            tokio::time::sleep(every).await;
            if !self.renew_now().await && *self.0.superseded.borrow() {
                self.lapse();
                return;
            }
            if !self.0.ownership.claim_valid() {
                self.lapse();
            }
        }
    }

    /// The claim lapsed: forget every shard this node held and drop their actors.
    fn lapse(&self) {
        let owned = self.0.ownership.owned();
        if owned.is_empty() {
            return;
        }
        tracing::warn!(
            shards = owned.len(),
            "this node's claim lapsed; dropping its shards"
        );
        let mut lost = HashSet::new();
        for shard in owned {
            if self.0.ownership.apply(shard, Event::LeaseLapsed) == Some(Action::Passivate) {
                lost.insert(shard);
            }
        }
        self.passivate(lost);
        self.0.reread.store(true, Ordering::Release);
    }

    async fn reconcile_loop(self) {
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "reconciling shard ownership failed; retrying");
            }
            if *self.0.superseded.borrow() {
                return;
            }
            let _ =
                tokio::time::timeout(self.0.options.reconcile_every, self.0.wake.notified()).await;
        }
    }

    async fn refresh(&self) -> Result<(), emporium_persistence::Error> {
        let nodes = self.0.leases.nodes().await?;
        let due = self.0.reread.swap(false, Ordering::AcqRel)
            || self
                .lock_known()
                .shards_read
                .is_none_or(|t| t.elapsed() >= SHARDS_REREAD);
        let records = if due {
            Some(self.0.leases.shards().await?)
        } else {
            None
        };
        let mut lost = HashSet::new();
        if let Some(records) = &records {
            let changes: Vec<OwnerChange> = records.iter().map(change_of).collect();
            lost = self.apply_changes(&changes);
        }
        {
            let mut known = self.lock_known();
            known.nodes = nodes;
            self.update_peers(&mut known);
            if let Some(records) = records {
                known.records = records;
                known.shards_read = Some(Instant::now());
            }
        }
        self.passivate(lost);
        Ok(())
    }

    async fn reconcile(&self) -> Result<(), emporium_persistence::Error> {
        self.refresh().await?;
        if !self.0.ownership.claim_valid() {
            self.lapse();
            return Ok(());
        }
        let plan = {
            let known = self.lock_known();
            let states = self.0.ownership.states();
            let discovered: BTreeSet<u32> = known.discovered.keys().copied().collect();
            let mut discovered = discovered;
            discovered.insert(self.me().ordinal);
            reconcile::plan(&View {
                me: self.me(),
                leaving: self.is_leaving(),
                map: self.0.ownership.map(),
                states: &states,
                records: &known.records,
                nodes: &known.nodes,
                discovered: &discovered,
                now_ms: wall_ms(),
            })
        };
        if plan.is_empty() {
            return Ok(());
        }
        let changes = self.perform(plan).await;
        if !changes.is_empty() {
            self.broadcast(PeerRequest::Notify(Notice::Ownership { changes }))
                .await;
        }
        Ok(())
    }

    /// Claims, then handoffs; returns the ownership changes written.
    async fn perform(&self, plan: Plan) -> Vec<OwnerChange> {
        let me = node_ref(self.me());
        let mut written = Vec::new();
        for (from, shards) in plan.claims {
            match self.0.leases.transfer(&shards, from, Some(me)).await {
                Ok(records) => {
                    let ours: Vec<OwnerChange> = records
                        .iter()
                        .filter(|r| r.owner == Some(me))
                        .map(change_of)
                        .collect();
                    self.apply_changes(&ours);
                    for c in &ours {
                        tracing::debug!(shard = c.shard, from = ?from.map(|f| f.ordinal),
                            to = me.ordinal, epoch = c.epoch, "shard claimed");
                    }
                    if !ours.is_empty() {
                        tracing::info!(shards = ours.len(), from = ?from.map(|f| f.ordinal),
                            to = me.ordinal, "claimed shards");
                        self.0
                            .stats
                            .claims
                            .fetch_add(ours.len() as u64, Ordering::Relaxed);
                    }
                    written.extend(ours);
                }
                Err(e) => tracing::warn!(error = %e, "claiming shards failed"),
            }
        }
        written.extend(self.hand_off(plan.handoffs).await);
        written
    }

    /// What this node sees, for `/admin/cluster` and `emporium cluster status`.
    pub fn status(&self) -> crate::stats::ClusterStatus {
        let known = self.lock_known();
        let history = self
            .0
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        crate::stats::ClusterStatus::build(
            self.me(),
            self.is_leaving(),
            &self.0.ownership,
            &known.nodes,
            &known.discovered,
            wall_ms(),
            history,
            self.0.started_ms.load(Ordering::Relaxed),
        )
    }
}

fn change_of(r: &ShardRecord) -> OwnerChange {
    OwnerChange {
        shard: r.shard,
        owner: r.owner.map(|o| o.ordinal),
        generation: r.owner.map_or(0, |o| o.generation),
        epoch: r.epoch,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long a renewal sent now lets this node serve: the lease minus a fifth, so it stops before
/// any other node may take its shards, even with some clock skew between them.
fn claim_window(ttl: Duration) -> Duration {
    ttl - ttl / 5
}
