//! The gateway's pure rules (docs/GATEWAY.md): the canonical path that is both matched and
//! forwarded, which client headers never reach the origin and which the edge sets, and the claims
//! of the signed origin assertion. No `worker`: the edge (`edge::forward`) applies them.

pub mod assertion;
pub mod headers;
pub mod path;
