//! recog's web UI (webcam in the browser, frames over a WebSocket, boxes and names drawn on
//! a canvas, enrolment, the gallery) and its JSON API, over the library's
//! [`recog::gallery::Service`]. `recog serve` maps its flags to a [`ServeConfig`] and calls
//! [`run`].
//!
//! The face models and the SQLite connection live on one engine thread that serves jobs in
//! order; the async handlers only decode requests and wait for the engine's answer. One
//! thread is what the CPU backend would use well anyway, and it keeps the gallery and the
//! index consistent without locks.
//!
//! The server sheds load rather than queueing it: the engine's queue is bounded (a full
//! queue answers `503` with `Retry-After`), every request has a deadline, and a WebSocket
//! frame that arrives while its socket's previous frame is still being recognised, or sooner
//! than the socket's frame-rate limit allows, is dropped (answered `{"type": "dropped"}`),
//! never queued. With a token (given, or made up when listening beyond loopback), every
//! endpoint needs it: the page, the WebSocket, the API and the thumbnails.
//!
//! ```no_run
//! use recog::face::FacePipeline;
//! use recog::gallery::{Gallery, Service};
//! let cfg = recog_serve::ServeConfig {
//!     addr: "127.0.0.1:8080".parse().unwrap(),
//!     ..Default::default()
//! };
//! recog_serve::run(cfg, || {
//!     let home = recog::Home::from_env();
//!     let g = Gallery::open("gallery.sqlite".as_ref())?;
//!     let pipe = FacePipeline::standard(&home, &recog::default_device(), &recog::NoProgress)?;
//!     Service::new(pipe, g, None)
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::oneshot;

use recog::gallery::{self, FaceAnswer, ImageAnswer, Person, Recognized, Service};
use recog::video::track::{Tracker, TrackerConfig};
use recog::ErrorKind;

pub mod fuzzing;
pub mod load;
mod requests;

pub use requests::{constant_time_eq, ClientMessage};

const PAGE: &str = include_str!("index.html");

/// What the server asks of the recognition side. [`Service`] (face models + gallery) is the
/// one `recog serve` runs; tests and the fuzz targets run light stand-ins.
pub trait Engine {
    /// Finds and names the faces of an uploaded image.
    fn identify(&mut self, image: &[u8]) -> recog::Result<(ImageAnswer, Vec<Recognized>)>;
    /// Enrols the photo under `name`; returns the photos added (0: already enrolled).
    fn enroll(&mut self, name: &str, image: &[u8]) -> recog::Result<usize>;
    /// People and their photo counts.
    fn people(&mut self) -> recog::Result<Vec<Person>>;
    /// Removes a person; false if there was none.
    fn remove(&mut self, name: &str) -> recog::Result<bool>;
    /// A person's first thumbnail (JPEG).
    fn thumbnail(&mut self, name: &str) -> recog::Result<Option<Vec<u8>>>;
    /// The model's verification distance: the WebSocket tracker's identity gate.
    fn verification_distance(&self) -> f32;
}

impl Engine for Service {
    fn identify(&mut self, image: &[u8]) -> recog::Result<(ImageAnswer, Vec<Recognized>)> {
        Service::identify(self, image)
    }
    fn enroll(&mut self, name: &str, image: &[u8]) -> recog::Result<usize> {
        Service::enroll(self, name, image)
    }
    fn people(&mut self) -> recog::Result<Vec<Person>> {
        Service::people(self)
    }
    fn remove(&mut self, name: &str) -> recog::Result<bool> {
        Service::remove(self, name)
    }
    fn thumbnail(&mut self, name: &str) -> recog::Result<Option<Vec<u8>>> {
        Service::thumbnail(self, name)
    }
    fn verification_distance(&self) -> f32 {
        Service::verification_distance(self)
    }
}

#[derive(Serialize)]
struct PersonOut {
    name: String,
    photos: usize,
    thumbnail: String,
}

/// Where a queued job stands. The engine and the waiting handler race at the deadline; one
/// compare-and-swap decides, so a job is either run and answered, or skipped and answered
/// 503, never run after its caller was told it was not.
const WAITING: u8 = 0;
const STARTED: u8 = 1;
const GIVEN_UP: u8 = 2;

/// The engine's side of a job's answer.
struct Reply<T> {
    tx: oneshot::Sender<std::result::Result<T, ApiError>>,
    state: Arc<AtomicU8>,
}

impl<T> Reply<T> {
    /// Claims the job for running; false when its caller gave up (deadline) or left.
    fn start(&self) -> bool {
        !self.tx.is_closed()
            && self
                .state
                .compare_exchange(WAITING, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn send(self, r: std::result::Result<T, ApiError>) {
        let _ = self.tx.send(r);
    }
}

/// The handler's side: the answer, and the state shared with the engine.
struct Ticket<T> {
    rx: oneshot::Receiver<std::result::Result<T, ApiError>>,
    state: Arc<AtomicU8>,
}

impl<T> Ticket<T> {
    /// At the deadline: true if the job had not started, which it now never will.
    fn give_up(&self) -> bool {
        self.state
            .compare_exchange(WAITING, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

enum Job {
    Identify(Bytes, Reply<Recognition>),
    Enroll(String, Bytes, Reply<usize>),
    List(Reply<Vec<Person>>),
    Remove(String, Reply<bool>),
    Thumbnail(String, Reply<Option<Vec<u8>>>),
}

/// An API error: status and message, sent as `{"error": "..."}`; a busy server's answer
/// carries `Retry-After`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

/// The status a library error answers: the caller's mistakes are 4xx, the server's 5xx.
fn api_error(e: recog::Error) -> ApiError {
    let status = match e.kind() {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::ModelMismatch => StatusCode::CONFLICT,
        ErrorKind::Corrupt | ErrorKind::Storage | ErrorKind::Unavailable | ErrorKind::Io => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError::new(status, e.to_string())
}

#[derive(Default, Serialize, Clone)]
struct Stats {
    /// Frames identified over WebSockets.
    ws_frames: u64,
    /// WebSocket frames dropped: sent while the socket's previous frame was being
    /// recognised, faster than the frame-rate limit, or while the queue was full.
    dropped_frames: u64,
    /// Requests answered 503 because the queue was full or the deadline passed.
    shed: u64,
    /// Frames the pages reported as drawn.
    drawn_frames: u64,
    /// The labels of the last frame a page drew.
    last_drawn: Vec<String>,
    /// Open WebSockets.
    clients: u64,
    /// Size of the last WebSocket frame and the faces found in it.
    last_frame: [u32; 2],
    last_faces: usize,
}

#[derive(Clone)]
struct AppState {
    jobs: mpsc::SyncSender<Job>,
    token: Option<Arc<str>>,
    stats: Arc<Mutex<Stats>>,
    /// The model's verification distance: the tracker's identity gate.
    verification_distance: f32,
    timeout: Duration,
    /// The shortest gap between two frames of one WebSocket.
    frame_gap: Duration,
}

/// Runs the jobs in order. A job whose caller gave up (deadline passed, or disconnected) is
/// skipped, so the 503 it got stays true; a job once started always runs to its answer.
fn engine<E: Engine>(mut e: E, jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        match job {
            Job::Identify(bytes, tx) if tx.start() => {
                tx.send(e.identify(&bytes).map_err(api_error))
            }
            Job::Enroll(name, bytes, tx) if tx.start() => {
                tx.send(e.enroll(&name, &bytes).map_err(api_error))
            }
            Job::List(tx) if tx.start() => tx.send(e.people().map_err(api_error)),
            Job::Remove(name, tx) if tx.start() => tx.send(e.remove(&name).map_err(api_error)),
            Job::Thumbnail(name, tx) if tx.start() => {
                tx.send(e.thumbnail(&name).map_err(api_error))
            }
            _ => {}
        }
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl AppState {
    fn new(
        jobs: mpsc::SyncSender<Job>,
        token: Option<&str>,
        verification_distance: f32,
        cfg: &ServeConfig,
    ) -> Self {
        Self {
            jobs,
            token: token.map(Arc::from),
            stats: Arc::new(Mutex::new(Stats::default())),
            verification_distance,
            timeout: cfg.request_timeout,
            frame_gap: Duration::from_secs_f32(1.0 / cfg.max_fps.clamp(0.01, 1000.0)),
        }
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut st) = self.stats.lock() {
            f(&mut st);
        }
    }

    /// Queues a job, or answers 503 at once when the queue is full.
    fn submit<T>(
        &self,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> std::result::Result<Ticket<T>, ApiError> {
        let (tx, rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(WAITING));
        let reply = Reply {
            tx,
            state: state.clone(),
        };
        match self.jobs.try_send(job(reply)) {
            Ok(()) => Ok(Ticket { rx, state }),
            Err(mpsc::TrySendError::Full(_)) => {
                self.count(|st| st.shed += 1);
                Err(ApiError::busy(
                    "the server is busy (its queue is full); retry",
                ))
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                Err(internal("the recognition engine stopped"))
            }
        }
    }

    /// Waits for a queued job's answer until `deadline`. A job not started by then is
    /// answered 503 and never run; one already started is waited for, so its answer (an
    /// enrolment done, say) is never reported as not done.
    async fn answer_by<T>(
        &self,
        t: &mut Ticket<T>,
        deadline: Instant,
    ) -> std::result::Result<T, ApiError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = match tokio::time::timeout(left, &mut t.rx).await {
            Ok(r) => r,
            Err(_) if t.give_up() => {
                self.count(|st| st.shed += 1);
                return Err(ApiError::busy(format!(
                    "no answer within {:.0} s; the request was not carried out; retry",
                    self.timeout.as_secs_f64()
                )));
            }
            Err(_) => (&mut t.rx).await,
        };
        r.unwrap_or_else(|_| Err(internal("the recognition engine stopped")))
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> std::result::Result<T, ApiError> {
        let deadline = Instant::now() + self.timeout;
        let mut t = self.submit(job)?;
        self.answer_by(&mut t, deadline).await
    }
}

/// Every route passes here: with a token, a request without it is answered 401.
async fn authorize(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(want) = &s.token {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !requests::authorized(want, bearer, req.uri().query()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs its token (Authorization: Bearer TOKEN, or ?token=TOKEN)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn api_identify(
    State(s): State<AppState>,
    body: Bytes,
) -> std::result::Result<Json<ImageAnswer>, ApiError> {
    let (out, _) = s.ask(|tx| Job::Identify(body, tx)).await?;
    Ok(Json(out))
}

async fn api_enroll(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    let name = gallery::check_name(&name).map_err(api_error)?;
    let n = s.ask(|tx| Job::Enroll(name.clone(), body, tx)).await?;
    Ok(Json(serde_json::json!({ "enrolled": n, "name": name })))
}

async fn api_list(
    State(s): State<AppState>,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    let people: Vec<PersonOut> = s
        .ask(Job::List)
        .await?
        .into_iter()
        .map(|p| PersonOut {
            thumbnail: format!("/api/people/{}/thumbnail", url_encode(&p.name)),
            name: p.name,
            photos: p.photos,
        })
        .collect();
    Ok(Json(serde_json::json!({ "people": people })))
}

async fn api_remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    if !s.ask(|tx| Job::Remove(name.clone(), tx)).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{name} is not in the gallery"),
        ));
    }
    Ok(Json(serde_json::json!({ "removed": name })))
}

async fn api_thumbnail(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> std::result::Result<Response, ApiError> {
    match s.ask(|tx| Job::Thumbnail(name.clone(), tx)).await? {
        Some(jpeg) => Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no thumbnail of {name}"),
        )),
    }
}

async fn api_stats(State(s): State<AppState>) -> Json<Stats> {
    Json(s.stats.lock().map(|g| g.clone()).unwrap_or_default())
}

async fn ws_upgrade(
    State(s): State<AppState>,
    ws: WebSocketUpgrade,
    limit: axum::extract::Extension<UploadLimit>,
) -> Response {
    ws.max_message_size(limit.0 .0)
        .on_upgrade(move |socket| ws_session(s, socket))
}

#[derive(Clone, Copy)]
struct UploadLimit(usize);

/// What the engine makes of one photo or frame: the answer sent, and the faces behind it.
type Recognition = (ImageAnswer, Vec<Recognized>);
type FrameAnswer = std::result::Result<Recognition, ApiError>;

/// Binary messages are frames (JPEG/PNG); each gets a JSON answer with the track-voted names,
/// or `{"type": "dropped"}` when it came while the previous frame was still being recognised,
/// sooner than the frame-rate limit allows, or with the queue full: frames are never queued,
/// so a slow engine costs a camera frames, not latency. Text messages are
/// [`ClientMessage`]s.
async fn ws_session(s: AppState, mut socket: WebSocket) {
    s.count(|st| st.clients += 1);
    let mut tracker = Tracker::new(TrackerConfig {
        verification_distance: Some(s.verification_distance),
        ..Default::default()
    });
    let mut pending: Option<(Instant, Ticket<Recognition>)> = None;
    let mut last_frame: Option<Instant> = None;
    loop {
        let reply = tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    let too_soon = last_frame.is_some_and(|t| t.elapsed() < s.frame_gap);
                    let why = if pending.is_some() {
                        Some("busy")
                    } else if too_soon {
                        Some("rate")
                    } else {
                        match s.submit(|tx| Job::Identify(bytes, tx)) {
                            Ok(t) => {
                                last_frame = Some(Instant::now());
                                pending = Some((Instant::now(), t));
                                None
                            }
                            Err(_) => Some("queue"),
                        }
                    };
                    match why {
                        Some(why) => {
                            s.count(|st| st.dropped_frames += 1);
                            serde_json::json!({ "type": "dropped", "reason": why })
                        }
                        None => continue,
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some(ClientMessage::Drawn { labels }) = ClientMessage::parse(t.as_str()) {
                        s.count(|st| {
                            st.drawn_frames += 1;
                            st.last_drawn = labels;
                        });
                    }
                    continue;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            r = async {
                match pending.as_mut() {
                    Some((t0, t)) => s.answer_by(t, *t0 + s.timeout).await,
                    None => std::future::pending().await,
                }
            } => {
                // Borrowed, not taken: a frame that arrives first must not cancel the wait.
                // A deadline passed is counted as shed by `answer_by`.
                pending = None;
                let r: FrameAnswer = r;
                match r {
                    Ok((mut out, found)) => {
                        let dets: Vec<_> = found.iter().map(FaceAnswer::detection).collect();
                        out.faces = found
                            .iter()
                            .zip(tracker.update(&dets))
                            .map(|(r, t)| FaceAnswer::tracked(r, &t))
                            .collect();
                        s.count(|st| {
                            st.ws_frames += 1;
                            st.last_frame = [out.width, out.height];
                            st.last_faces = out.faces.len();
                        });
                        serde_json::json!({ "type": "result", "result": out })
                    }
                    Err(e) => serde_json::json!({ "type": "error", "error": e.message }),
                }
            }
        };
        if socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    s.count(|st| st.clients = st.clients.saturating_sub(1));
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// The token every endpoint then needs; `None` beyond loopback makes one up and prints
    /// it, `None` on loopback serves without one.
    pub token: Option<String>,
    /// Largest accepted upload or WebSocket frame, bytes.
    pub max_upload: usize,
    /// Jobs the engine may have waiting; one more is answered 503.
    pub queue: usize,
    /// How long a request may wait for the engine before it is answered 503 (and dropped
    /// from the queue unrun).
    pub request_timeout: Duration,
    /// The most frames per second one WebSocket gets recognised; faster frames are dropped.
    pub max_fps: f32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_upload: 8 << 20,
            queue: 16,
            request_timeout: Duration::from_secs(30),
            max_fps: 15.0,
        }
    }
}

/// Why serving stopped.
#[derive(Debug)]
pub struct ServeError(
    /// What went wrong.
    pub String,
);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// The token in force: the given one, none on loopback, else a random one.
fn token_for(cfg: &ServeConfig) -> Option<String> {
    match (&cfg.token, cfg.addr.ip().is_loopback()) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => None,
        (None, false) => {
            use rand::Rng;
            let mut r = rand::rng();
            Some(
                (0..16)
                    .map(|_| format!("{:02x}", r.random::<u8>()))
                    .collect(),
            )
        }
    }
}

/// The routes over an engine queue, with the token check in front of every one.
fn app(state: AppState, max_upload: usize) -> Router {
    let limit = max_upload.max(1);
    Router::new()
        .route("/", get(page))
        .route("/ws", get(ws_upgrade))
        .route("/api/identify", post(api_identify))
        .route("/api/people", get(api_list))
        .route("/api/people/{name}", post(api_enroll).delete(api_remove))
        .route("/api/people/{name}/thumbnail", get(api_thumbnail))
        .route("/api/stats", get(api_stats))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::extract::Extension(UploadLimit(limit)))
        .with_state(state)
}

/// Starts the engine thread with the engine `start` builds there; returns its queue, its
/// verification distance and its handle.
fn start_engine<E: Engine + 'static>(
    queue: usize,
    start: impl FnOnce() -> recog::Result<E> + Send + 'static,
) -> std::result::Result<(mpsc::SyncSender<Job>, f32, std::thread::JoinHandle<()>), ServeError> {
    let (jobs, rx) = mpsc::sync_channel(queue.max(1));
    let (ready_tx, ready_rx) = mpsc::sync_channel::<recog::Result<f32>>(1);
    let handle = std::thread::spawn(move || match start() {
        Ok(e) => {
            let _ = ready_tx.send(Ok(e.verification_distance()));
            engine(e, rx);
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e));
        }
    });
    let distance = ready_rx
        .recv()
        .map_err(|_| ServeError("the recognition engine did not start".into()))?
        .map_err(|e| ServeError(format!("{e}")))?;
    Ok((jobs, distance, handle))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves until Ctrl-C or SIGTERM. `start` builds the engine on the engine thread (the
/// models hold backend tensors that are not `Send`); its error is returned before anything
/// listens. The first stdout line is the address, so scripts (and the tests) can find the
/// port.
///
/// On a stop signal the server stops accepting, lets the requests in flight finish (an
/// enrolment in progress completes; each is one transaction either way), then waits for the
/// engine to drain its queue and closes the gallery.
pub fn run<E: Engine + 'static>(
    cfg: ServeConfig,
    start: impl FnOnce() -> recog::Result<E> + Send + 'static,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    serve(
        cfg,
        start,
        |url| {
            // The first stdout line is the address, so scripts (and the tests) can find the
            // port.
            println!("recog serve: {url}");
            use std::io::Write;
            std::io::stdout().flush().ok();
        },
        stop_signal(),
    )?;
    eprintln!("recog serve: stopped");
    Ok(())
}

/// A server running on its own thread ([`spawn`]): its address and token, and a way to stop
/// it as a stop signal would.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token in force, if any.
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::result::Result<(), ServeError>>>,
}

impl Running {
    /// Stops accepting, finishes the requests in flight and the engine's queue, and returns
    /// how serving ended.
    pub fn stop(mut self) -> std::result::Result<(), ServeError> {
        self.finish()
    }

    fn finish(&mut self) -> std::result::Result<(), ServeError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| ServeError("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Starts a server on a thread of its own, as [`run`] would but without signal handling or
/// stdout; returns once it listens (or with the engine's or the listener's error).
pub fn spawn<E: Engine + 'static>(
    cfg: ServeConfig,
    start: impl FnOnce() -> recog::Result<E> + Send + 'static,
) -> std::result::Result<Running, ServeError> {
    let (ready_tx, ready_rx) = mpsc::sync_channel::<std::result::Result<SocketAddr, ServeError>>(1);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let token = token_for(&cfg);
    let cfg = ServeConfig {
        token: token.clone(),
        ..cfg
    };
    let failed = ready_tx.clone();
    let thread = std::thread::spawn(move || {
        let r = serve(
            cfg,
            start,
            move |url| {
                let addr = url
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| ServeError(format!("an address the server gave: {url}")));
                let _ = ready_tx.send(addr);
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .map_err(|e| ServeError(e.to_string()));
        if let Err(e) = &r {
            let _ = failed.send(Err(ServeError(e.0.clone())));
        }
        r
    });
    match ready_rx.recv() {
        Ok(Ok(addr)) => Ok(Running {
            addr,
            token,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(ServeError(
            "the server thread stopped before listening".into(),
        )),
    }
}

/// Serves until `stop` resolves; `listening` gets the page's URL (with the token) once the
/// listener is bound.
fn serve<E: Engine + 'static>(
    cfg: ServeConfig,
    start: impl FnOnce() -> recog::Result<E> + Send + 'static,
    listening: impl FnOnce(&str),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let token = token_for(&cfg);
    let (jobs, verification_distance, engine_thread) = start_engine(cfg.queue, start)?;
    let app = app(
        AppState::new(jobs, token.as_deref(), verification_distance, &cfg),
        cfg.max_upload,
    );
    let grace = cfg.request_timeout + Duration::from_secs(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError(format!("starting the async runtime: {e}")))?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .map_err(|e| ServeError(format!("listening on {}: {e}", cfg.addr)))?;
        let local = listener.local_addr()?;
        let url = match &token {
            Some(t) => format!("http://{local}/?token={t}"),
            None => format!("http://{local}/"),
        };
        listening(&url);
        // After the stop signal the requests in flight get as long as a request may take;
        // an open WebSocket (a page left open) must not hold the shutdown forever.
        let stopping = Arc::new(tokio::sync::Notify::new());
        let notify = stopping.clone();
        let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.await;
            notify.notify_one();
        });
        tokio::select! {
            r = serving => r.map_err(|e| {
                Box::new(ServeError(format!("serving: {e}"))) as Box<dyn std::error::Error>
            }),
            _ = async {
                stopping.notified().await;
                tokio::time::sleep(grace).await;
            } => Ok(()),
        }
    });
    // WebSocket tasks hold queue senders; stopping the runtime drops them, and the engine
    // then finishes what is queued and returns.
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = engine_thread.join();
    served
}

#[cfg(test)]
mod tests {
    use super::fuzzing::StubEngine;
    use super::load::Http;
    use super::*;

    /// The stub engine, taking `delay` over every identify and enrolment.
    struct Slow(StubEngine, Duration);

    impl Engine for Slow {
        fn identify(&mut self, image: &[u8]) -> recog::Result<(ImageAnswer, Vec<Recognized>)> {
            std::thread::sleep(self.1);
            self.0.identify(image)
        }
        fn enroll(&mut self, name: &str, image: &[u8]) -> recog::Result<usize> {
            std::thread::sleep(self.1);
            self.0.enroll(name, image)
        }
        fn people(&mut self) -> recog::Result<Vec<Person>> {
            self.0.people()
        }
        fn remove(&mut self, name: &str) -> recog::Result<bool> {
            self.0.remove(name)
        }
        fn thumbnail(&mut self, name: &str) -> recog::Result<Option<Vec<u8>>> {
            self.0.thumbnail(name)
        }
        fn verification_distance(&self) -> f32 {
            0.6
        }
    }

    fn slow_server(delay_ms: u64, queue: usize, timeout_ms: u64) -> Running {
        let cfg = ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            queue,
            request_timeout: Duration::from_millis(timeout_ms),
            max_fps: 1000.0,
            ..Default::default()
        };
        spawn(cfg, move || {
            Ok(Slow(StubEngine::default(), Duration::from_millis(delay_ms)))
        })
        .unwrap()
    }

    fn png() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(8, 8)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    fn people(addr: SocketAddr) -> Vec<String> {
        let a = Http::new(addr, None)
            .call("GET", "/api/people", &[])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        v["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_full_queue_is_answered_503_with_retry_after() {
        let s = slow_server(300, 1, 30_000);
        let addr = s.addr;
        let answers: Vec<_> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..5)
                .map(|_| {
                    sc.spawn(move || {
                        Http::new(addr, None)
                            .call("POST", "/api/identify", &png())
                            .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let busy: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
        let ok = answers.iter().filter(|a| a.status == 200).count();
        // One running and one waiting fit; of five at once, at least three are turned away.
        assert!(
            busy.len() >= 3 && ok >= 1,
            "{busy:?} / {ok}",
            busy = busy.len()
        );
        assert!(busy.iter().all(|a| a.retry_after == Some(1)));
        s.stop().unwrap();
    }

    #[test]
    fn a_job_past_its_deadline_is_503_and_never_run_but_a_started_one_finishes() {
        // Each enrolment takes 400 ms, the deadline is 250 ms: the first starts at once and
        // overruns its deadline (it must still be answered 200 and be done); the second
        // waits behind it past its deadline (503, and never run).
        let s = slow_server(400, 4, 250);
        let addr = s.addr;
        let (a, b) = std::thread::scope(|sc| {
            let a = sc.spawn(move || {
                Http::new(addr, None)
                    .call("POST", "/api/people/first", &png())
                    .unwrap()
            });
            std::thread::sleep(Duration::from_millis(50));
            let b = sc.spawn(move || {
                Http::new(addr, None)
                    .call("POST", "/api/people/second", &png())
                    .unwrap()
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(b.status, 503, "{}", String::from_utf8_lossy(&b.body));
        assert_eq!(b.retry_after, Some(1));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(people(addr), ["first"]);
        s.stop().unwrap();
    }

    #[test]
    fn websocket_frames_sent_while_one_is_recognised_are_dropped_not_queued() {
        let s = slow_server(300, 16, 30_000);
        let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", s.addr)).unwrap();
        for _ in 0..3 {
            ws.send(tungstenite::Message::binary(png())).unwrap();
        }
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                kinds.push(format!("{}:{}", v["type"], v["reason"]));
            }
        }
        // The two that came while the first was being recognised are answered at once.
        assert_eq!(
            kinds,
            [
                r#""dropped":"busy""#,
                r#""dropped":"busy""#,
                r#""result":null"#
            ]
        );
        ws.close(None).unwrap();
        drop(ws);
        s.stop().unwrap();
    }

    #[test]
    fn stopping_lets_the_enrolment_in_flight_finish() {
        let s = slow_server(400, 4, 30_000);
        let addr = s.addr;
        let h = std::thread::spawn(move || {
            Http::new(addr, None)
                .call("POST", "/api/people/late", &png())
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        s.stop().unwrap();
        let a = h.join().unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert!(t0.elapsed() >= Duration::from_millis(250));
    }
}
