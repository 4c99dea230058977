//! The account core: the state of one account (its document), the refresh-token families of its
//! sessions, the protocol the issuer's router speaks to the account's Durable Object, and the state
//! machine that applies each request. Pure: no `worker`, time and randomness are arguments; the
//! Durable Object (`issuer::account_object`) only loads, calls [`core::apply`], saves and mirrors.

#[cfg(feature = "issuer")]
pub mod core;
pub mod family;
#[cfg(feature = "issuer")]
pub mod lifecycle;
#[cfg(feature = "issuer")]
pub mod mfa;
pub mod protocol;
pub mod state;
#[cfg(feature = "issuer")]
pub mod transition;
