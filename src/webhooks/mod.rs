//! The self-inspections' webhooks (seed 003): a company registers a URL, and each inspection of
//! its that is opened, concluded or cancelled is POSTed there, signed, until the receiver takes
//! it.
//!
//! - [`target`], which URLs a webhook may have (http/https, no private addresses: SSRF);
//! - [`seal`], the signing secrets, encrypted at rest;
//! - [`signature`], the `X-Fleet-Signature` header;
//! - [`schedule`], the deliveries an event makes (the inspections' processor writes them with
//!   its checkpoint: [`crate::inspection_processor`]);
//! - [`worker`] and [`client`], the deliveries made, retried and recorded.

pub mod client;
pub mod schedule;
pub mod seal;
pub mod signature;
pub mod target;
pub mod worker;
