//! The `Account` Durable Object: one per account, the authority for its password hash and sessions.

use worker::{durable_object, DurableObject, Env, Request, Response, State};

/// One account's Durable Object (SQLite storage).
#[durable_object]
pub struct Account {
    #[allow(dead_code)]
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for Account {
    fn new(state: State, env: Env) -> Self {
        Account { state, env }
    }

    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        Response::error("not found", 404)
    }
}
