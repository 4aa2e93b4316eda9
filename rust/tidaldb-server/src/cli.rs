//! The command line: parses the arguments and runs one subcommand.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cert::{CertRequest, make_certs};
use crate::tools;

#[derive(Debug, Parser)]
#[command(
    name = "tidaldb",
    version,
    about = "tidaldb: engagement signals whose value decays with time"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one server: a replica of every hosted tenant, with its peers and client port.
    Serve {
        /// The node's TOML config.
        #[arg(long)]
        config: PathBuf,
        /// No TLS and no authentication: anyone who reaches the ports can read and write.
        /// For a trusted machine only; the config must then have no [tls] section.
        #[arg(long)]
        insecure: bool,
    },
    /// Make a test CA (ca.pem) and one certificate and key per name, signed by it.
    Cert {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// A certificate to make (repeat): node and client names alike.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// A host the certificates are valid for (repeat); default 127.0.0.1 and localhost.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Show a data directory: schema, tenants, segments, snapshot, event counts, version
    /// vector. Reads only; the directory should not be open in a running process.
    Inspect {
        dir: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every checksum in a data directory and name the file and offset of any damage.
    /// Exits 1 when an open would refuse the directory.
    Verify { dir: PathBuf },
    /// Write a data directory's events (or its current scores) as CSV or Parquet.
    Export(tools::ExportArgs),
    /// Ask a running node about the control plane, or send it an operator's command
    /// (status, drain REGION, rejoin REGION).
    Admin(crate::admin::AdminArgs),
}

/// Runs the command line; the exit code is 0 on success, 2 on a usage error, 1 otherwise.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging();
    let outcome = match cli.command {
        Command::Serve { config, insecure } => crate::serve::serve(&config, insecure),
        Command::Cert { out, names, hosts } => {
            let hosts = if hosts.is_empty() {
                vec!["127.0.0.1".into(), "localhost".into()]
            } else {
                hosts
            };
            make_certs(&CertRequest { out, names, hosts }).map(|files| {
                for f in files {
                    println!("{}", f.display());
                }
            })
        }
        Command::Inspect { dir, json } => tools::inspect(&dir, json),
        Command::Verify { dir } => tools::verify(&dir),
        Command::Export(args) => tools::export(&args),
        Command::Admin(args) => crate::admin::admin(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidaldb: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `TIDALDB_LOG` picks the level (error, warn, info, debug, trace).
fn init_logging() {
    let level = match std::env::var("TIDALDB_LOG").as_deref() {
        Ok("error") => tracing::Level::ERROR,
        Ok("warn") => tracing::Level::WARN,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
