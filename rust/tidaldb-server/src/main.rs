//! `tidaldb`: see `tidaldb --help`.

fn main() -> std::process::ExitCode {
    tidaldb_server::cli::run(std::env::args_os())
}
