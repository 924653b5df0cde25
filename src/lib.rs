//! mde-alerts: export Microsoft Defender for Endpoint alerts into SQLite and snapshot files.
//!
//! The promise, in order: every alert in its latest state exactly once, never a torn file, never a
//! leaked secret, a clear message for every misconfiguration, a small API budget, speed.
//!
//! Modules follow the data's path: [`config`] → [`auth`] → [`source`] → [`store`] → [`export`];
//! [`poll`] drives one cycle, [`daemon`] runs the service; the simulator (crate `mde_sim`) stands
//! in for Microsoft in the demo and the tests. `docs/ARCHITECTURE.md` draws the path and says which
//! module owns what.
#![warn(missing_docs)]

pub mod alert;
pub mod auth;
pub mod auth_check;
pub mod budget;
pub mod compare;
pub mod config;
pub mod configured_exports;
pub mod daemon;
pub mod demo;
pub(crate) mod env;
pub mod error;
pub mod export;
pub mod health;
pub mod http;
pub mod import;
pub(crate) mod metrics;
pub mod poll;
pub mod poll_job;
pub(crate) mod preflight;
pub(crate) mod redact;
pub mod signal;
pub mod source;
pub mod store;
pub(crate) mod tenant_poll;
pub mod words;
