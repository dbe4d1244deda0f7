//! `recog serve`: flags -> [`recog_serve::ServeConfig`], the engine built from the face
//! flags and the gallery.

use std::net::SocketAddr;

use anyhow::Result;
use clap::Args;

use recog::gallery::{Gallery, Service};

use crate::face::PipeArgs;
use crate::gallery::DbArg;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port). Beyond loopback, every endpoint needs
    /// the token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Token every endpoint then needs (`Authorization: Bearer TOKEN` or `?token=`);
    /// generated and printed when listening beyond loopback without one. Also RECOG_TOKEN.
    #[arg(long, env = "RECOG_TOKEN")]
    pub token: Option<String>,
    /// Largest accepted upload or WebSocket frame, in MiB.
    #[arg(long, default_value_t = 8)]
    pub max_upload_mib: usize,
    /// Jobs the engine may have waiting; beyond, requests are answered 503 with Retry-After.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Seconds a request may wait for the engine before it is answered 503 (unrun).
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Most frames per second recognised per WebSocket; faster frames are dropped.
    #[arg(long, default_value_t = 15.0)]
    pub max_fps: f32,
    /// A distance threshold (default: the gallery's calibrated rule, else distance <= 0.6).
    #[arg(long)]
    pub threshold: Option<f32>,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub pipe: PipeArgs,
}

pub fn run(a: &ServeArgs) -> Result<()> {
    let cfg = recog_serve::ServeConfig {
        addr: a.addr,
        token: a.token.clone(),
        max_upload: a.max_upload_mib.clamp(1, 4096) * 1024 * 1024,
        queue: a.queue,
        request_timeout: std::time::Duration::from_secs_f64(
            a.request_timeout.clamp(0.01, 86_400.0),
        ),
        max_fps: a.max_fps,
    };
    let (pipe_args, db, threshold) = (a.pipe.clone(), a.db.path(), a.threshold);
    recog_serve::run(cfg, move || {
        let g = Gallery::open(&db)?;
        let pipe = pipe_args.pipeline_for(&g)?;
        Service::new(pipe, g, threshold)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}
