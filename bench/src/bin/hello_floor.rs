//! The floor for HTTP benchmarks: actix-web returning a constant, with the same worker count as
//! `emporium`. `hello-floor [ADDR]` (default 127.0.0.1:8090).

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    HttpServer::new(|| {
        App::new().route("/", web::to(|| async { HttpResponse::Ok().body("hello") }))
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
