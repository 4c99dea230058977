//! Benchmark baseline: the cheapest workers-rs worker, answering every request with "ok".

#[worker::event(fetch)]
async fn fetch(_req: worker::Request, _env: worker::Env, _ctx: worker::Context) -> worker::Result<worker::Response> {
    worker::Response::ok("ok")
}
