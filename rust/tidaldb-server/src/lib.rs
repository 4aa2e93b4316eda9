//! The `tidaldb` command. `serve` runs one replica as a process; `cert` makes a test CA;
//! `inspect`, `verify` and `export` read a data directory that no process has open.

pub mod admin;
pub mod cert;
pub mod cli;
pub mod config;
pub mod http;
pub mod serve;
pub mod tools;
