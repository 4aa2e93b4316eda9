//! `tidaldb inspect`, `verify` and `export`: thin faces of `tidaldb::runtime::tools`, which
//! read a data directory without writing to it. A server keeps the default tenant's
//! replica in its `data_dir` and tenant `t`'s in `data_dir/tenant-t`; give either.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tidaldb::runtime::tools::{self, ExportFormat, ExportWhat};
use tidaldb::{TenantId, Timestamp};

/// Prints what the directory holds: as text, or as JSON with `json`.
pub fn inspect(dir: &Path, json: bool) -> Result<(), String> {
    let report = tools::inspect(dir).map_err(|e| e.to_string())?;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Checks every checksum. Fails (exit 1) when there is damage an open would refuse; a torn
/// tail alone, which recovery cuts off, is reported but passes.
pub fn verify(dir: &Path) -> Result<(), String> {
    let report = tools::verify(dir).map_err(|e| e.to_string())?;
    print!("{report}");
    if report.has_corruption() {
        return Err(format!("{} is damaged (see above)", dir.display()));
    }
    Ok(())
}

/// What `tidaldb export` was asked for.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    pub dir: PathBuf,
    /// csv or parquet.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// The current decayed score of every (signal, entity) instead of the events.
    #[arg(long)]
    pub scores: bool,
    /// With --scores: the time to read at, in Unix seconds (default now).
    #[arg(long)]
    pub at: Option<f64>,
    /// A tenant of the directory (default: the default tenant).
    #[arg(long)]
    pub tenant: Option<u64>,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Export what the log still holds even when a snapshot holds older events.
    #[arg(long)]
    pub allow_partial: bool,
}

pub fn export(args: &ExportArgs) -> Result<(), String> {
    let format = match args.format.as_str() {
        "csv" => ExportFormat::Csv,
        "parquet" => ExportFormat::Parquet,
        other => return Err(format!("--format {other:?}: use csv or parquet")),
    };
    let tenant = args.tenant.map(TenantId);
    let what = if args.scores {
        let at = match args.at {
            Some(secs) => Timestamp::from_secs_f64(secs).map_err(|e| e.to_string())?,
            None => Timestamp::now(),
        };
        ExportWhat::Scores { tenant, at }
    } else {
        if args.at.is_some() {
            return Err("--at applies to --scores only".into());
        }
        ExportWhat::Events {
            tenant,
            allow_partial: args.allow_partial,
        }
    };
    let rows = match &args.out {
        Some(path) => {
            let file =
                File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut out = BufWriter::new(file);
            let rows =
                tools::export(&args.dir, what, format, &mut out).map_err(|e| e.to_string())?;
            out.flush()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            rows
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let rows =
                tools::export(&args.dir, what, format, &mut out).map_err(|e| e.to_string())?;
            out.flush()
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
            rows
        }
    };
    eprintln!("tidaldb: exported {rows} rows");
    Ok(())
}
