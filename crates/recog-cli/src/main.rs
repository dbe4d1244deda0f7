//! `recog`: the command-line front end of the recog library.

mod cluster;
mod commands;
mod digits;
mod face;
mod gallery;
mod models;
mod progress;
mod serve;
mod watch;

use clap::Parser;

// burn-flex allocates and frees 100+ MB im2col buffers every training step; glibc's malloc
// maps and unmaps them each time (page faults, TLB shootdowns), which measured 739 ms/step
// against 450 ms with an allocator that keeps its pages (`recog bench train`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = commands::Cli::parse();
    if cli.offline {
        // Every command reads its home from the environment; set before any thread starts.
        std::env::set_var("RECOG_OFFLINE", "1");
    }
    // Rust ignores SIGPIPE, so `recog ... | head` would panic on the closed pipe. Commands that
    // only print get the default action back (exit quietly, like other Unix tools); those that
    // feed FFmpeg or serve sockets keep ignoring it and report broken pipes as errors.
    if !matches!(
        cli.command,
        commands::Command::Watch(_)
            | commands::Command::Serve(_)
            | commands::Command::Gallery(gallery::GalleryCommand::Capture { .. })
    ) {
        // SAFETY: called before any other thread starts; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("RECOG_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if cli.verbose { "info" } else { "warn" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    // burn panics on a BURN_DEVICE it cannot use; say so as an error before any work.
    if let Err(e) = recog::check_device_env()
        .map_err(anyhow::Error::from)
        .and_then(|_| commands::run(cli))
    {
        let mut msg = format!("error: {e}");
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(&format!(": {c}"));
            }
        }
        eprintln!("{msg}");
        std::process::exit(1);
    }
}
