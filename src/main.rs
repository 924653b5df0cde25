//! The `mde-alerts` command: parse the command line, run the command (`cli`), and turn its error
//! into an exit code (0 ok, 1 the run failed, 2 usage, 78 configuration; see `error`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[macro_use]
mod cli;

/// mimalloc: parsing a backfill allocates millions of small strings and maps; glibc malloc was a
/// tenth of the import profile. The `system-alloc` feature turns it off for heap profilers.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args.config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // The store is one SQLite connection behind a mutex, so store work cannot use more
        // threads; tokio's default (512) let 10,000 staggered polls park hundreds of threads on
        // that mutex (400 MB resident). Queued work waits for a thread instead. Four, not 16:
        // each thread keeps its own allocator pages, and the pages of threads that exit between
        // ticks stay held (at 10,000 tenants 16 threads left 544 such pages, ~34 MiB, at peak).
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(mde_alerts::error::EXIT_FAILED);
        }
    };
    let result = runtime.block_on(cli::run(args));
    // Blocking work still running (an export cut short by SIGTERM) must not hold up the exit:
    // its temp file is removed by the next export, and no -latest file is partial.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => code,
        // The reader went away (`| head -1`): a normal end, not a failure.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {}", mde_alerts::http::error_chain(&e));
            if let Some(fix) = e.hint() {
                errln!("  fix: {fix}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
