//! `ferrocast-loadgen`: simulated LL-HLS viewers for load tests on loopback (see the library
//! docs and `--help`).

use anyhow::Result;
use clap::Parser;
use ferrocast_loadgen::{run, validate, Args};

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(run(&args))?;
    report.print(args.json);
    Ok(())
}
