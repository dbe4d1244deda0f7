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
//! ```no_run
//! use recog::face::FacePipeline;
//! use recog::gallery::{Gallery, Service};
//! let cfg = recog_serve::ServeConfig {
//!     addr: "127.0.0.1:8080".parse().unwrap(),
//!     token: None,
//!     max_upload: 8 << 20,
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
use std::sync::{mpsc, Arc, Mutex};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use recog::gallery::{self, FaceAnswer, ImageAnswer, Recognized, Service};
use recog::video::track::{Tracker, TrackerConfig};
use recog::ErrorKind;

const PAGE: &str = include_str!("index.html");

#[derive(Serialize)]
struct PersonOut {
    name: String,
    photos: usize,
    thumbnail: String,
}

type Reply<T> = oneshot::Sender<std::result::Result<T, ApiError>>;

enum Job {
    Identify(Bytes, Reply<(ImageAnswer, Vec<Recognized>)>),
    Enroll(String, Bytes, Reply<usize>),
    List(Reply<Vec<PersonOut>>),
    Remove(String, Reply<bool>),
    Thumbnail(String, Reply<Option<Vec<u8>>>),
}

/// An API error: status and message, sent as `{"error": "..."}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
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
    ApiError(status, e.to_string())
}

#[derive(Default, Serialize, Clone)]
struct Stats {
    /// Frames identified over WebSockets.
    ws_frames: u64,
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
    jobs: mpsc::Sender<Job>,
    token: Option<String>,
    stats: Arc<Mutex<Stats>>,
    /// The model's verification distance: the tracker's identity gate.
    verification_distance: f32,
}

fn engine(mut service: Service, jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        match job {
            Job::Identify(bytes, tx) => {
                let _ = tx.send(service.identify(&bytes).map_err(api_error));
            }
            Job::Enroll(name, bytes, tx) => {
                let _ = tx.send(service.enroll(&name, &bytes).map_err(api_error));
            }
            Job::List(tx) => {
                let r = service.people().map_err(api_error).map(|people| {
                    people
                        .into_iter()
                        .map(|p| PersonOut {
                            thumbnail: format!("/api/people/{}/thumbnail", url_encode(&p.name)),
                            name: p.name,
                            photos: p.photos,
                        })
                        .collect()
                });
                let _ = tx.send(r);
            }
            Job::Remove(name, tx) => {
                let _ = tx.send(service.remove(&name).map_err(api_error));
            }
            Job::Thumbnail(name, tx) => {
                let _ = tx.send(service.thumbnail(&name).map_err(api_error));
            }
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
    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> std::result::Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(job(tx))
            .map_err(|_| internal("the recognition engine stopped"))?;
        rx.await
            .map_err(|_| internal("the recognition engine stopped"))?
    }

    fn authorize(&self, headers: &HeaderMap, q: &TokenQuery) -> std::result::Result<(), ApiError> {
        let Some(want) = &self.token else {
            return Ok(());
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer == Some(want.as_str()) || q.token.as_deref() == Some(want.as_str()) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "this server needs its token to change the gallery (Authorization: Bearer TOKEN)"
                    .into(),
            ))
        }
    }
}

#[derive(Deserialize, Default)]
struct TokenQuery {
    token: Option<String>,
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
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    s.authorize(&headers, &q)?;
    let name = gallery::check_name(&name).map_err(api_error)?;
    let n = s.ask(|tx| Job::Enroll(name.clone(), body, tx)).await?;
    Ok(Json(serde_json::json!({ "enrolled": n, "name": name })))
}

async fn api_list(
    State(s): State<AppState>,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    let people = s.ask(Job::List).await?;
    Ok(Json(serde_json::json!({ "people": people })))
}

async fn api_remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    s.authorize(&headers, &q)?;
    if !s.ask(|tx| Job::Remove(name.clone(), tx)).await? {
        return Err(ApiError(
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
        None => Err(ApiError(
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

/// Binary messages are frames (JPEG/PNG); each gets a JSON answer with the track-voted names.
/// Text messages `{"type": "drawn", "labels": [...]}` are the page's report of what it drew.
async fn ws_session(s: AppState, mut socket: WebSocket) {
    if let Ok(mut st) = s.stats.lock() {
        st.clients += 1;
    }
    let mut tracker = Tracker::new(TrackerConfig {
        verification_distance: Some(s.verification_distance),
        ..Default::default()
    });
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Binary(bytes) => match s.ask(|tx| Job::Identify(bytes, tx)).await {
                Ok((mut out, found)) => {
                    let dets: Vec<_> = found.iter().map(FaceAnswer::detection).collect();
                    out.faces = found
                        .iter()
                        .zip(tracker.update(&dets))
                        .map(|(r, t)| FaceAnswer::tracked(r, &t))
                        .collect();
                    if let Ok(mut st) = s.stats.lock() {
                        st.ws_frames += 1;
                        st.last_frame = [out.width, out.height];
                        st.last_faces = out.faces.len();
                    }
                    serde_json::json!({ "type": "result", "result": out })
                }
                Err(e) => serde_json::json!({ "type": "error", "error": e.1 }),
            },
            Message::Text(t) => {
                #[derive(Deserialize)]
                struct Drawn {
                    #[serde(rename = "type")]
                    kind: String,
                    #[serde(default)]
                    labels: Vec<String>,
                }
                if let Ok(d) = serde_json::from_str::<Drawn>(t.as_str()) {
                    if d.kind == "drawn" {
                        if let Ok(mut st) = s.stats.lock() {
                            st.drawn_frames += 1;
                            st.last_drawn = d.labels;
                        }
                    }
                }
                continue;
            }
            Message::Close(_) => break,
            _ => continue,
        };
        if socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    if let Ok(mut st) = s.stats.lock() {
        st.clients = st.clients.saturating_sub(1);
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// Token for enrol and remove; `None` beyond loopback makes one up and prints it.
    pub token: Option<String>,
    /// Largest accepted upload or WebSocket frame, bytes.
    pub max_upload: usize,
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

/// Serves until Ctrl-C. `start` builds the service on the engine thread (the models hold
/// backend tensors that are not `Send`); its error is returned before anything listens.
/// The first stdout line is the address, so scripts (and the tests) can find the port.
pub fn run(
    cfg: ServeConfig,
    start: impl FnOnce() -> recog::Result<Service> + Send + 'static,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let token = match (&cfg.token, cfg.addr.ip().is_loopback()) {
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
    };
    let (jobs, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<recog::Result<f32>>(1);
    std::thread::spawn(move || match start() {
        Ok(service) => {
            let _ = ready_tx.send(Ok(service.verification_distance()));
            engine(service, rx);
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e));
        }
    });
    let verification_distance = ready_rx
        .recv()
        .map_err(|_| ServeError("the recognition engine did not start".into()))??;
    let limit = cfg.max_upload.max(1);
    let state = AppState {
        jobs,
        token: token.clone(),
        stats: Arc::new(Mutex::new(Stats::default())),
        verification_distance,
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/ws", get(ws_upgrade))
        .route("/api/identify", post(api_identify))
        .route("/api/people", get(api_list))
        .route("/api/people/{name}", post(api_enroll).delete(api_remove))
        .route("/api/people/{name}/thumbnail", get(api_thumbnail))
        .route("/api/stats", get(api_stats))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::extract::Extension(UploadLimit(limit)))
        .with_state(state);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError(format!("starting the async runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .map_err(|e| ServeError(format!("listening on {}: {e}", cfg.addr)))?;
        let local = listener.local_addr()?;
        let url = match &token {
            Some(t) => format!("http://{local}/?token={t}"),
            None => format!("http://{local}/"),
        };
        // The first stdout line is the address, so scripts (and the tests) can find the port.
        println!("recog serve: {url}");
        use std::io::Write;
        std::io::stdout().flush().ok();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| {
                Box::new(ServeError(format!("serving: {e}"))) as Box<dyn std::error::Error>
            })
    })
}
