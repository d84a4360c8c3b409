//! `emporium-load`: the storefront load generator (see `emporium_bench::load` and the README).
//! Exit status: 0 done, 1 the run could not be made, 3 `--verify` found acknowledged writes
//! missing or unreadable.

use clap::Parser;
use emporium_bench::load::{self, Options};

fn main() -> std::process::ExitCode {
    let opts = Options::parse();
    match load::run_blocking(opts) {
        Ok(summary) => {
            print!("{}", load::table(&summary));
            for (kind, path) in &summary.files {
                println!("{kind}: {}", path.display());
            }
            match &summary.verify {
                Some(v) if v.missing_total > 0 || v.unreadable > 0 => {
                    std::process::ExitCode::from(3)
                }
                _ => std::process::ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("emporium-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
