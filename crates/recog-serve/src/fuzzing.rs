//! The server's request handling over a stand-in engine, for the `serve_request` fuzz target
//! and the tests: the real routes, token check, body limits and WebSocket message parser, with
//! an engine that decodes uploads ([`recog::gallery::service::decode_upload`]) and keeps names
//! in memory instead of running face models.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use recog::gallery::{service::decode_upload, ImageAnswer, Person, Recognized};

use super::*;

/// An engine without models: identify and enrol decode the upload as the real one does.
#[derive(Default)]
pub struct StubEngine {
    people: Vec<Person>,
}

impl Engine for StubEngine {
    fn identify(&mut self, image: &[u8]) -> recog::Result<(ImageAnswer, Vec<Recognized>)> {
        let img = decode_upload(image)?;
        Ok((
            ImageAnswer {
                width: img.width(),
                height: img.height(),
                threshold: 0.6,
                accept: "distance <= 0.600".into(),
                ms: 0.0,
                faces: Vec::new(),
            },
            Vec::new(),
        ))
    }
    fn enroll(&mut self, name: &str, image: &[u8]) -> recog::Result<usize> {
        let name = recog::gallery::check_name(name)?;
        decode_upload(image)?;
        match self.people.iter_mut().find(|p| p.name == name) {
            Some(p) => p.photos += 1,
            None => self.people.push(Person { name, photos: 1 }),
        }
        Ok(1)
    }
    fn people(&mut self) -> recog::Result<Vec<Person>> {
        Ok(self.people.clone())
    }
    fn remove(&mut self, name: &str) -> recog::Result<bool> {
        let n = self.people.len();
        self.people.retain(|p| p.name != name);
        Ok(self.people.len() < n)
    }
    fn thumbnail(&mut self, name: &str) -> recog::Result<Option<Vec<u8>>> {
        Ok(self
            .people
            .iter()
            .any(|p| p.name == name)
            .then(|| vec![0xff, 0xd8, 0xff, 0xd9]))
    }
    fn verification_distance(&self) -> f32 {
        0.6
    }
}

/// The routes of [`run`] over a [`StubEngine`], with token `t0k`, the default limits and a
/// 64 KiB upload limit; the engine thread lives as long as the router.
pub fn stub_app(token: Option<&str>) -> Router {
    let cfg = ServeConfig {
        max_upload: 64 << 10,
        ..ServeConfig::default()
    };
    let (jobs, verification_distance, _thread) =
        match start_engine(cfg.queue, || Ok(StubEngine::default())) {
            Ok(x) => x,
            Err(e) => panic!("the stub engine cannot fail to start: {e}"),
        };
    app(
        AppState::new(jobs, token, verification_distance, &cfg),
        cfg.max_upload,
    )
}

/// One fuzz input: `which` picks the part. 0: a WebSocket text message. Otherwise an HTTP
/// request to the stub server: `which` picks the method, the bytes up to the first newline
/// are the path and query, up to the next newline an `Authorization` value, the rest is the
/// body. Whatever the bytes, the answer is a response, never a panic.
pub fn request(which: u8, data: &[u8]) {
    static RT: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    if which == 0 {
        if let Ok(t) = std::str::from_utf8(data) {
            let _ = ClientMessage::parse(t);
        }
        return;
    }
    let (rt, router) = RT.get_or_init(|| {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("a runtime for the fuzz target: {e}"),
        };
        let router = rt.block_on(async { stub_app(Some("t0k")) });
        (rt, router)
    });
    let method =
        [Method::GET, Method::POST, Method::DELETE, Method::PUT][usize::from(which % 4)].clone();
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let uri = parts.next().unwrap_or_default();
    let auth = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let Ok(uri) = std::str::from_utf8(uri) else {
        return;
    };
    let mut req = Request::builder().method(method).uri(uri);
    if !auth.is_empty() {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let Ok(req) = req.body(Body::from(body)) else {
        return;
    };
    let router = router.clone();
    rt.block_on(async move {
        use tower::ServiceExt;
        let Ok(resp) = router.oneshot(req).await;
        let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await;
    });
}
