//! The load generator's command line (`emporium-load --help`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What the simulated shoppers do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Catalog pages, searches and product pages; no sign-in.
    Browse,
    /// Adds of one item to the shopper's own cart.
    AddToCart,
    /// One to three adds, then a checkout, over and over.
    Checkout,
    /// Browse 10 : view cart 3 : add 2 : checkout 1 (a checkout of an empty cart becomes an add).
    Mixed,
}

impl Scenario {
    /// The name the command line takes (`add-to-cart`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Browse => "browse",
            Scenario::AddToCart => "add-to-cart",
            Scenario::Checkout => "checkout",
            Scenario::Mixed => "mixed",
        }
    }

    /// Whether the scenario signs shoppers in and writes (users and stock are set up first).
    pub fn writes(self) -> bool {
        !matches!(self, Scenario::Browse)
    }
}

#[derive(Clone, Debug, Parser)]
#[command(
    name = "emporium-load",
    about = "Drives the storefront API like shoppers do, and reports what it saw",
    long_about = "Drives the storefront API like shoppers do: closed loop (--connections) or open \
loop at a fixed arrival rate (--rate, latency from the intended send time). Prints a progress \
line each second and, at the end, a table by operation; writes summary.json, timeline.csv and \
timeline.png to --out. Sends only to the --targets it is given, and stops by itself at \
--duration or --max-requests (or on Ctrl-C). Exit status 3 when --verify finds acknowledged \
writes missing."
)]
pub struct Options {
    /// What the shoppers do.
    #[arg(long, value_enum, default_value = "mixed")]
    pub scenario: Scenario,
    /// Base URL(s), comma-separated: requests go round robin; a target that refuses connections
    /// (or whose /readyz is not 200) is skipped and counted.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    pub targets: Vec<String>,
    /// Closed loop: this many shoppers, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 8, conflicts_with = "rate")]
    pub connections: usize,
    /// Open loop: requests started at this fixed rate per second, whatever the answers take;
    /// each latency counts from the request's intended start.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: at most this many requests in flight (later ones wait, and their wait counts).
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// How long to run.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests (setup and verification not counted).
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Shoppers (accounts); default: --connections, or 64 in open loop.
    #[arg(long)]
    pub users: Option<usize>,
    /// Mint shoppers' and the admin's tokens with this HS256 secret (the server's
    /// EMPORIUM_JWT_SECRET) instead of registering each shopper.
    #[arg(long, env = "EMPORIUM_LOAD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// An admin account (in the server's EMPORIUM_ADMIN_EMAILS): it creates the products with
    /// stock that the writing scenarios buy.
    #[arg(long, default_value = "admin@example.com")]
    pub admin_email: String,
    /// The admin's password (registered when the account does not exist); not needed with
    /// --jwt-secret. Without either, the writing scenarios use catalog products as they are.
    #[arg(long, env = "EMPORIUM_LOAD_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Products the admin creates for this run.
    #[arg(long, default_value_t = 16)]
    pub products: usize,
    /// Stock each created product starts with.
    #[arg(long, default_value_t = 1_000_000)]
    pub stock: u64,
    /// At the end, check every acknowledged add and checkout against carts, orders and stock.
    #[arg(long)]
    pub verify: bool,
    /// A file of events to mark on the plot, one per line: `<time> <label>`, the time in Unix
    /// seconds (as `date +%s.%N` prints) or in seconds since the run started. Read at the end.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Where summary.json, timeline.csv and timeline.png go.
    #[arg(long, default_value = "target/load")]
    pub out: PathBuf,
    /// Each request's time limit.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Seed of the shoppers' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl Options {
    pub fn user_count(&self) -> usize {
        self.users
            .unwrap_or(if self.rate.is_some() {
                64
            } else {
                self.connections
            })
            .max(1)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err("--targets: at least one URL".into());
        }
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "--rate {rate}: a positive number of requests per second"
                ));
            }
        }
        if self.max_in_flight == 0 {
            return Err("--max-in-flight must be at least 1".into());
        }
        if self.products == 0 {
            return Err("--products must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        Ok(())
    }

    /// The options a test or a script starts from: one target, every other value its default.
    pub fn for_target(url: &str) -> Self {
        let mut o = Self::parse_from(["emporium-load"]);
        o.targets = vec![url.to_owned()];
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_command_parses() {
        let o = Options::try_parse_from([
            "emporium-load",
            "--scenario",
            "add-to-cart",
            "--targets",
            "http://127.0.0.11:8080,http://127.0.0.12:8080",
            "--rate",
            "200",
            "--duration",
            "1m",
            "--verify",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.scenario, Scenario::AddToCart);
        assert_eq!(o.targets.len(), 2);
        assert_eq!(o.duration, Duration::from_secs(60));
        assert_eq!(o.user_count(), 64);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn rate_and_connections_exclude_each_other() {
        assert!(
            Options::try_parse_from(["emporium-load", "--rate", "10", "--connections", "4"])
                .is_err()
        );
    }
}
