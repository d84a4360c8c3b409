//! The floor for HTTP benchmarks: actix-web returning a constant. `hello-floor [ADDR]` (default
//! 127.0.0.1:8090). One worker per core, its fastest setting here (with wrk on the same 2 cores, 2
//! workers measured 129k and 139k req/s against 123k and 109k with 1), so the floor is the
//! hardest one to measure against; `FLOOR_WORKERS=N` sets another count.

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let workers = match std::env::var("FLOOR_WORKERS") {
        Ok(w) => w.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            std::io::Error::other(format!(
                "FLOOR_WORKERS={w}: expected a worker count above 0"
            ))
        })?,
        Err(_) => std::thread::available_parallelism().map_or(2, usize::from),
    };
    HttpServer::new(|| {
        App::new().route("/", web::to(|| async { HttpResponse::Ok().body("hello") }))
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
