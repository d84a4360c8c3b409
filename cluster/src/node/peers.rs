//! Where the peers are (discovery and the addresses their generations registered), and news to
//! all of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::{Known, Node};
use crate::wire::PeerRequest;

impl Node {
    pub(super) async fn discovery_loop(
        self,
        mut discovery: watch::Receiver<BTreeMap<u32, SocketAddr>>,
    ) {
        loop {
            let current = discovery.borrow_and_update().clone();
            {
                let mut known = self.lock_known();
                known.discovered = current;
                self.update_peers(&mut known);
            }
            self.0.reread.store(true, Ordering::Release);
            self.nudge();
            if discovery.changed().await.is_err() {
                return;
            }
        }
    }

    /// Where each peer is reached: the address its current generation registered (it knows
    /// its own address, and a restarted pod's new address is there before DNS has it), else the
    /// one discovery found.
    pub(super) fn update_peers(&self, known: &mut Known) {
        let mut wanted: BTreeMap<u32, SocketAddr> = known.discovered.clone();
        for n in &known.nodes {
            if let Ok(addr) = n.address.parse::<SocketAddr>() {
                if !addr.ip().is_unspecified() {
                    wanted.insert(n.ordinal, addr);
                }
            }
        }
        wanted.remove(&self.me().ordinal);
        for (ordinal, addr) in &wanted {
            if known.peers.get(ordinal) != Some(addr) {
                self.0.client.set_peer(*ordinal, *addr);
            }
        }
        for gone in known.peers.keys().filter(|o| !wanted.contains_key(o)) {
            self.0.client.remove_peer(*gone);
        }
        known.peers = wanted;
    }

    /// Sends `request` to every discovered peer, concurrently, each bounded by the request
    /// timeout. News is best effort: peers also re-read the store.
    pub async fn broadcast(&self, request: PeerRequest) {
        let peers: Vec<u32> = self
            .lock_known()
            .peers
            .keys()
            .copied()
            .filter(|o| *o != self.me().ordinal)
            .collect();
        let calls = peers.iter().map(|p| self.0.client.call(*p, &request));
        for (peer, result) in peers
            .iter()
            .zip(futures_util::future::join_all(calls).await)
        {
            if let Err(e) = result {
                tracing::debug!(peer, error = %e, "a peer did not take the news");
            }
        }
    }
}
