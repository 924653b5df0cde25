//! The behaviour tests, in one integration crate (one link instead of eight): against the
//! in-process simulator, and against the real binary where the process matters (signals, exit
//! codes, kill -9).

mod support;

mod auth;
mod auto;
mod budget;
mod cli;
mod docs;
mod export;
mod files;
mod filters;
mod graph;
mod holes;
mod hostile;
mod input;
mod install;
mod kill;
mod layout;
mod loss;
mod mail;
mod metrics;
mod poll;
mod quiet;
mod regression;
mod report;
mod service;
mod sim_tenants;
mod store;
mod tenants_dir;
