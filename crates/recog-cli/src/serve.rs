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
    /// Address to listen on (port 0: any free port). Beyond loopback, enrol and remove need
    /// the token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Token for enrol/remove (`Authorization: Bearer TOKEN` or `?token=`); generated and
    /// printed when listening beyond loopback without one. Also RECOG_TOKEN.
    #[arg(long, env = "RECOG_TOKEN")]
    pub token: Option<String>,
    /// Largest accepted upload or WebSocket frame, in MiB.
    #[arg(long, default_value_t = 8)]
    pub max_upload_mib: usize,
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
        max_upload: a.max_upload_mib.max(1) * 1024 * 1024,
    };
    let (pipe_args, db, threshold) = (a.pipe.clone(), a.db.path(), a.threshold);
    recog_serve::run(cfg, move || {
        let g = Gallery::open(&db)?;
        let pipe = pipe_args.pipeline_for(&g)?;
        Service::new(pipe, g, threshold)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}
