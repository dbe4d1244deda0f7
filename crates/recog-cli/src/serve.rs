//! `recog serve`: flags -> [`recog_serve::ServeConfig`], the engine built from the face
//! flags and the gallery.

use std::net::SocketAddr;

use anyhow::Result;
use clap::Args;

use recog::gallery::{Gallery, Service};

use crate::face::PipeArgs;
use crate::gallery::DbArg;

/// How much work the server takes on: `serve`'s flags, and the same for `bench serve`.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Jobs the engine may have waiting; beyond, requests are answered 503 with Retry-After.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Seconds a request may wait for the engine before it is answered 503 (unrun).
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Most frames per second recognised per WebSocket; faster frames are dropped.
    #[arg(long, default_value_t = 15.0)]
    pub max_fps: f32,
}

impl LimitArgs {
    /// A server configuration at `addr` with these limits.
    fn config(&self, addr: SocketAddr) -> recog_serve::ServeConfig {
        recog_serve::ServeConfig {
            addr,
            queue: self.queue,
            request_timeout: std::time::Duration::from_secs_f64(
                self.request_timeout.clamp(0.01, 86_400.0),
            ),
            max_fps: self.max_fps,
            ..Default::default()
        }
    }
}

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
    #[command(flatten)]
    pub limits: LimitArgs,
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
        token: a.token.clone(),
        max_upload: a.max_upload_mib.clamp(1, 4096) * 1024 * 1024,
        ..a.limits.config(a.addr)
    };
    let (pipe_args, db, threshold) = (a.pipe.clone(), a.db.location(), a.threshold);
    recog_serve::run(cfg, move || {
        let g = Gallery::open_at(&db)?;
        let pipe = pipe_args.pipeline_for(&g)?;
        Service::new(pipe, g, threshold)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

#[derive(Args, Debug, Clone)]
pub struct BenchServeArgs {
    /// Face photos (one face each), a folder searched recursively.
    #[arg(long)]
    pub photos: std::path::PathBuf,
    /// Photos taken from the folder (the first, in path order).
    #[arg(long, default_value_t = 40)]
    pub max_photos: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Requests per client: identify, list, enrol and remove, a quarter each on average.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// WebSocket streams sending frames alongside.
    #[arg(long, default_value_t = 8)]
    pub ws: usize,
    /// Frames per second each stream offers.
    #[arg(long, default_value_t = 30.0)]
    pub ws_fps: f32,
    /// People enrolled before the load.
    #[arg(long, default_value_t = 8)]
    pub seed_people: usize,
    /// A 503's Retry-After is slept times this (0: retry at once).
    #[arg(long, default_value_t = 1.0)]
    pub retry_after_scale: f32,
    /// The server's limits, as `recog serve` takes them.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The gallery the server uses; default: a fresh one in a temporary folder. It is
    /// checked (`gallery check`) after the server stops.
    #[arg(long)]
    pub db: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub pipe: PipeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recog bench serve`: a load test of the server on loopback; fails when anything was lost,
/// duplicated or answered with an unexpected error.
pub fn bench(a: &BenchServeArgs) -> Result<()> {
    let mut photos = recog::data::folder::images_under(&a.photos)?;
    photos.sort();
    photos.truncate(a.max_photos.max(1));
    let params = recog_serve::load::LoadParams {
        clients: a.clients,
        requests: a.requests,
        ws_streams: a.ws,
        ws_fps: a.ws_fps,
        photos,
        seed_people: a.seed_people,
        retry_after_scale: a.retry_after_scale,
        seed: 1,
    }
    .check()?;
    let tmp = tempfile::tempdir()?;
    let db =
        a.db.clone()
            .unwrap_or_else(|| tmp.path().join("gallery.sqlite"));
    let cfg = a.limits.config("127.0.0.1:0".parse()?);
    let (pipe_args, engine_db) = (a.pipe.clone(), db.clone());
    let progress = crate::progress::Bars::new(a.json);
    let r = params.run(
        cfg,
        move || {
            let g = Gallery::open(&engine_db)?;
            let pipe = pipe_args.pipeline_for(&g)?;
            Service::new(pipe, g, None)
        },
        Some(&db),
        &progress,
    )?;
    crate::commands::emit(a.json, &r)?;
    if !r.passed() {
        anyhow::bail!(
            "the load test found errors, lost or duplicated enrolments, or a damaged gallery"
        );
    }
    Ok(())
}
