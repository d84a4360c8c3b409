//! The one typed configuration root, layered: defaults → TOML file (`--config`) → `EMPORIUM_*`
//! environment (`__` nests) → command-line flags; then [`Config::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the storefront API listens on.
    pub listen: String,
    /// Where the embedded store (sled) and the generated JWT secret live.
    pub data_dir: PathBuf,
    /// HS256 secret. Unset: generated once and kept in the data dir (with a warning).
    pub jwt_secret: Option<String>,
    /// Accounts with these emails get the admin role. A comma-separated string or a list.
    #[serde(deserialize_with = "comma_list")]
    pub admin_emails: Vec<String>,
    /// Origins (`https://shop.example.com`) whose pages may call the API from a browser, or `*` for
    /// any. A comma-separated string or a list. Empty: no CORS headers, same-origin pages only.
    #[serde(deserialize_with = "comma_list")]
    pub cors_origins: Vec<String>,
    /// Load the built-in demo catalog on first start of an empty store.
    pub demo_catalog: bool,
    /// Actors idle this long passivate.
    pub idle_timeout_secs: u64,
    /// Above this many live actors the least recently used passivate.
    pub max_active_actors: usize,
    /// A checkout's stock hold older than this (its node died mid-checkout, or its order write
    /// had an unknown outcome and no retry came) is settled against the store: kept if the
    /// order is stored, given back if not. At least 60, so no checkout is still running.
    pub stock_hold_timeout_secs: u64,
    /// Larger request bodies get 413.
    pub body_limit_bytes: usize,
    /// A request's head must arrive within this long of its connection, and its body within this
    /// long after its head, else 408.
    pub body_timeout_secs: u64,
    /// Fixed number of shards; never change it on a store with data.
    pub shards: u32,
    /// Lifetime of issued tokens.
    pub token_ttl_secs: u64,
    /// Delivered order events are kept this long, then pruned.
    pub outbox_retention_secs: u64,
    /// ISO 4217 currency of all prices.
    pub currency: String,
    /// HTTP worker threads; 0 means one per core but one, which is left to the write path.
    pub workers: usize,
    /// On SIGTERM, how long `/readyz` reports 503 before the listener closes.
    pub shutdown_grace_secs: u64,
    /// `sled` (embedded, in the data dir) or a `mongodb://` URI (shared by every node).
    pub store: String,
    /// Redis as the cart cache (`redis://host:port/db`, or `rediss://:token@host:port` over
    /// TLS); unset: no cache.
    pub redis_url: Option<String>,
    /// Cached carts untouched this long expire from Redis (the store keeps them).
    pub cart_cache_ttl_secs: u64,
    /// RabbitMQ for order events (`amqp://user:pass@host:port/vhost`, or `amqps://…` over TLS);
    /// unset: in-process relay.
    pub amqp_url: Option<String>,
    /// PEM bundle of the certificate authorities that TLS connections to Redis and RabbitMQ
    /// trust, and the store's when its URI turns TLS on without a `tlsCAFile`; unset: the
    /// system's roots (the store: the Mozilla roots).
    pub tls_ca_file: Option<PathBuf>,
    /// The durable topic exchange order events are published to (and `emporium notify` reads).
    pub amqp_exchange: String,
    /// `emporium notify`: the SMTP server (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`
    /// for STARTTLS, `smtps://user:pass@host:465`).
    pub smtp_url: Option<String>,
    /// `emporium notify`: the sender of every email (`Shop <orders@shop.example.com>`).
    pub mail_from: Option<String>,
    /// `emporium notify`: a directory whose `<event>.txt` / `<event>.html` files replace the
    /// built-in templates of the same name.
    pub notify_templates: Option<PathBuf>,
    /// `emporium notify`: its durable queue (bound to `order.*`); `<queue>.dead` holds what it
    /// dead-letters.
    pub notify_queue: String,
    /// `emporium notify`: unacknowledged messages the broker may hand it at once.
    pub notify_prefetch: u16,
    /// `emporium notify`: Redis that records the events already emailed (`redis://host:port/db`).
    pub notify_redis_url: Option<String>,
    /// `emporium notify`: how long a sent event is remembered (duplicates later than this would
    /// be emailed again).
    pub notify_dedupe_ttl_secs: u64,
    /// `emporium notify`: address of its `/healthz`, `/readyz` and `/metrics`.
    pub notify_listen: String,
    /// `emporium notify`: sending attempts per event before it is dead-lettered.
    pub notify_max_attempts: u32,
    /// `emporium notify`: the wait after the first failed attempt; it doubles up to the maximum.
    pub notify_retry_initial_ms: u64,
    /// `emporium notify`: the longest wait between two attempts.
    pub notify_retry_max_ms: u64,
    /// This node's StatefulSet ordinal; unset: parsed from `HOSTNAME` (`emporium-3` → 3).
    pub node_ordinal: Option<u32>,
    /// Static peer list for local clusters: `0=127.0.0.11:7070,1=127.0.0.12:7070`.
    pub peers: Option<String>,
    /// The Kubernetes headless service the peers are found through (re-resolved every 2 s).
    pub peer_dns: Option<String>,
    /// The DNS server to ask (`127.0.0.1:5353`); unset: the system's resolver configuration.
    pub peer_dns_server: Option<String>,
    /// Address of the node-to-node listener (cluster mode; default `0.0.0.0:7070`).
    pub peer_listen: Option<String>,
    /// The `ip:port` other nodes reach this one's peer listener at (a pod's IP); unset: the
    /// listen address when it is specific, else the pod's DNS name found through discovery.
    pub peer_advertise: Option<String>,
    /// Shared secret that authenticates every peer connection (cluster mode; at least 16 bytes).
    pub cluster_secret: Option<String>,
    /// How long a node's claim on its shards lasts without renewal: a node that died or was
    /// partitioned away has its shards taken over after this.
    pub claim_ttl_secs: u64,
}

/// Where the snapshots, users, catalog and outbox live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    Sled,
    Mongo(String),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./emporium-data"),
            jwt_secret: None,
            admin_emails: Vec::new(),
            cors_origins: Vec::new(),
            demo_catalog: true,
            idle_timeout_secs: 600,
            max_active_actors: 100_000,
            stock_hold_timeout_secs: 120,
            body_limit_bytes: 1024 * 1024,
            body_timeout_secs: 15,
            shards: 1024,
            token_ttl_secs: 24 * 3600,
            outbox_retention_secs: 7 * 24 * 3600,
            currency: "USD".into(),
            workers: 0,
            shutdown_grace_secs: 0,
            store: "sled".into(),
            redis_url: None,
            cart_cache_ttl_secs: 30 * 24 * 3600,
            amqp_url: None,
            tls_ca_file: None,
            amqp_exchange: "orders".into(),
            smtp_url: None,
            mail_from: None,
            notify_templates: None,
            notify_queue: "emporium-notify".into(),
            notify_prefetch: 16,
            notify_redis_url: None,
            notify_dedupe_ttl_secs: 7 * 24 * 3600,
            notify_listen: "127.0.0.1:8090".into(),
            notify_max_attempts: 10,
            notify_retry_initial_ms: 1000,
            notify_retry_max_ms: 60_000,
            node_ordinal: None,
            peers: None,
            peer_dns: None,
            peer_dns_server: None,
            peer_listen: None,
            peer_advertise: None,
            cluster_secret: None,
            claim_ttl_secs: 10,
        }
    }
}

/// Flags that override everything else (only those given).
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::to_owned).collect(),
        Raw::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect())
}

/// `*`, or `http(s)://host[:port]` as a browser sends it in `Origin`.
fn is_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let authority = authority
        .filter(|a| !a.is_empty() && !a.contains(['/', '?', '#', '@']))
        .and_then(|a| a.parse::<actix_web::http::uri::Authority>().ok());
    authority.is_some_and(|a| {
        // A port is what follows the last colon outside an IPv6 address's brackets.
        let has_port = a
            .as_str()
            .rsplit(']')
            .next()
            .is_some_and(|t| t.contains(':'));
        !has_port || a.port_u16().is_some()
    })
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(format!("config file {} does not exist", file.display()));
            }
            figment = figment.merge(Toml::file(file));
        }
        let config: Config = figment
            // `emporium cluster status` reads its token from EMPORIUM_ADMIN_TOKEN; not a server
            // setting, so a shell that exports it can still start a server.
            .merge(
                Env::prefixed("EMPORIUM_")
                    .ignore(&["admin_token"])
                    .split("__"),
            )
            .merge(Serialized::globals(overrides))
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr()?;
        if self.shards == 0 || self.shards > emporium_cluster::ShardMap::MAX_SHARDS {
            return Err(format!(
                "shards must be 1 to {}",
                emporium_cluster::ShardMap::MAX_SHARDS
            ));
        }
        if self.body_limit_bytes < 1024 {
            return Err("body_limit_bytes must be at least 1024".into());
        }
        if self.idle_timeout_secs == 0
            || self.token_ttl_secs == 0
            || self.max_active_actors == 0
            || self.body_timeout_secs == 0
        {
            return Err("idle_timeout_secs, token_ttl_secs, max_active_actors and \
                        body_timeout_secs must be positive"
                .into());
        }
        if self.stock_hold_timeout_secs < 60 {
            return Err("stock_hold_timeout_secs must be at least 60".into());
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < 16 {
                return Err("jwt_secret must be at least 16 bytes".into());
            }
        }
        if let Some(bad) = self
            .admin_emails
            .iter()
            .find(|e| emporium_engine::user::normalise_email(e).is_none())
        {
            return Err(format!("admin_emails: {bad:?} is not an email address"));
        }
        if let Some(bad) = self.cors_origins.iter().find(|o| !is_origin(o)) {
            return Err(format!(
                "cors_origins: {bad:?} is not an origin such as https://shop.example.com (scheme, \
                 host and optional port, no path) or *"
            ));
        }
        let store = self.store_kind()?;
        for (key, url, plain, tls) in [
            ("redis_url", &self.redis_url, "redis://", "rediss://"),
            ("amqp_url", &self.amqp_url, "amqp://", "amqps://"),
            (
                "notify_redis_url",
                &self.notify_redis_url,
                "redis://",
                "rediss://",
            ),
        ] {
            if let Some(url) = url {
                if !url.starts_with(plain) && !url.starts_with(tls) {
                    // The URL itself is not repeated: it may carry credentials.
                    return Err(format!("{key} must start with {plain} or {tls} (TLS)"));
                }
            }
        }
        if self.redis_url.is_some() && store == StoreKind::Sled {
            return Err(
                "redis_url needs a shared store (store = a mongodb:// URI): in front of the \
                        embedded store a cart cache would only add a round trip"
                    .into(),
            );
        }
        if self.amqp_exchange.is_empty() || self.amqp_exchange.len() > 255 {
            return Err("amqp_exchange must be 1 to 255 bytes".into());
        }
        if self.cart_cache_ttl_secs == 0 {
            return Err("cart_cache_ttl_secs must be positive".into());
        }
        crate::cluster::Settings::from_config(self)?;
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err("currency must be a three-letter ISO 4217 code such as USD".into());
        }
        Ok(())
    }

    pub fn store_kind(&self) -> Result<StoreKind, String> {
        let store = self.store.trim();
        if store.eq_ignore_ascii_case("sled") {
            Ok(StoreKind::Sled)
        } else if store.starts_with("mongodb://") {
            Ok(StoreKind::Mongo(store.to_owned()))
        } else if store.starts_with("mongodb+srv://") {
            Err("store: mongodb+srv:// URIs are not supported (no DNS SRV resolver is built in); list the hosts in a mongodb:// URI".into())
        } else {
            Err(format!(
                "store {store:?} must be \"sled\" or a mongodb:// URI"
            ))
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "listen {:?} is not an address like 127.0.0.1:8080",
                self.listen
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_validate() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("e.toml", "listen = \"127.0.0.1:9000\"\nshards = 64\n")?;
            jail.set_env("EMPORIUM_SHARDS", "128");
            jail.set_env("EMPORIUM_ADMIN_EMAILS", "Root@Example.com, ops@example.com");
            let overrides = Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Overrides::default()
            };
            let c = Config::load(Some(Path::new("e.toml")), &overrides)
                .map_err(figment::Error::from)?;
            assert_eq!(c.listen, "127.0.0.1:9000");
            assert_eq!(c.shards, 128);
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(c.admin_emails, vec!["root@example.com", "ops@example.com"]);
            jail.set_env("EMPORIUM_STOCK_HOLD_TIMEOUT_SECS", "59");
            let short = Config::load(None, &Overrides::default()).map(drop);
            assert!(
                format!("{short:?}").contains("stock_hold_timeout_secs"),
                "{short:?}"
            );
            jail.set_env("EMPORIUM_STOCK_HOLD_TIMEOUT_SECS", "90");
            let c = Config::load(None, &Overrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.stock_hold_timeout_secs, 90);
            jail.set_env("EMPORIUM_LISTEN", "nowhere");
            assert!(Config::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn backends_are_chosen_and_checked() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None, &Overrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.store_kind(), Ok(StoreKind::Sled));
            assert_eq!((c.redis_url, c.amqp_url), (None, None));
            jail.set_env("EMPORIUM_STORE", "mongodb://127.0.0.1:27017/shop");
            jail.set_env("EMPORIUM_REDIS_URL", "redis://127.0.0.1:6379/");
            jail.set_env("EMPORIUM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
            let c = Config::load(None, &Overrides::default()).map_err(figment::Error::from)?;
            assert_eq!(
                c.store_kind(),
                Ok(StoreKind::Mongo("mongodb://127.0.0.1:27017/shop".into()))
            );
            for (key, bad, says) in [
                ("EMPORIUM_STORE", "postgres://x", "store"),
                (
                    "EMPORIUM_STORE",
                    "mongodb+srv://cluster.example.com",
                    "mongodb+srv",
                ),
                ("EMPORIUM_REDIS_URL", "127.0.0.1:6379", "redis_url"),
                ("EMPORIUM_AMQP_URL", "guest@127.0.0.1", "amqp_url"),
            ] {
                jail.set_env(key, bad);
                let err = Config::load(None, &Overrides::default())
                    .err()
                    .unwrap_or_default();
                assert!(err.contains(says), "{key}={bad}: {err}");
                jail.set_env("EMPORIUM_STORE", "mongodb://127.0.0.1:27017/shop");
                jail.set_env("EMPORIUM_REDIS_URL", "redis://127.0.0.1:6379/");
                jail.set_env("EMPORIUM_AMQP_URL", "amqp://127.0.0.1:5672/%2f");
            }
            jail.set_env("EMPORIUM_REDIS_URL", "rediss://:token@127.0.0.1:6380/");
            jail.set_env(
                "EMPORIUM_AMQP_URL",
                "amqps://guest:guest@127.0.0.1:5671/%2f",
            );
            jail.set_env("EMPORIUM_TLS_CA_FILE", "/etc/emporium/ca.pem");
            let c = Config::load(None, &Overrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.tls_ca_file, Some(PathBuf::from("/etc/emporium/ca.pem")));
            jail.set_env("EMPORIUM_STORE", "sled");
            let err = Config::load(None, &Overrides::default())
                .err()
                .unwrap_or_default();
            assert!(err.contains("needs a shared store"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn cors_origins_are_origins() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "EMPORIUM_CORS_ORIGINS",
                "https://Shop.example.com, http://[::1]:3000",
            );
            let c = Config::load(None, &Overrides::default()).map_err(figment::Error::from)?;
            assert_eq!(
                c.cors_origins,
                vec!["https://shop.example.com", "http://[::1]:3000"]
            );
            for ok in ["*", "http://localhost:5173", "https://127.0.0.1"] {
                assert!(is_origin(ok), "{ok}");
            }
            for bad in [
                "shop.example.com",
                "https://shop.example.com/",
                "https://shop.example.com/app",
                "ftp://shop.example.com",
                "https://",
                "https://user@shop.example.com",
                "https://shop.example.com:99999",
            ] {
                jail.set_env("EMPORIUM_CORS_ORIGINS", bad);
                let err = match Config::load(None, &Overrides::default()) {
                    Ok(c) => format!("accepted as {:?}", c.cors_origins),
                    Err(e) => e,
                };
                assert!(err.contains("cors_origins"), "{bad}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            // The status command's token is not a server setting, and does not stop a server.
            jail.set_env("EMPORIUM_ADMIN_TOKEN", "a.b.c");
            assert!(Config::load(None, &Overrides::default()).is_ok());
            jail.set_env("EMPORIUM_LISTNE", "127.0.0.1:1");
            let err = Config::load(None, &Overrides::default())
                .err()
                .unwrap_or_default();
            assert!(err.contains("listne"), "{err}");
            Ok(())
        });
    }
}
