//! The API's accept loop: hyper with the limits a station on a factory network needs.
//! `axum::serve` has no header timeout and no connection cap, so a thousand idle sockets
//! could take the file handles the line needs for its images and its store.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use crate::config::ApiSection;

/// How long a stop waits for open requests to finish before it drops them (systemd's
/// `TimeoutStopSec` is 20 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A failed accept (out of file handles) is retried after this pause, not in a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What one client may take of the station.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection that has not sent a whole request head within this is closed.
    pub header_timeout: Duration,
    /// A request body that has not arrived whole within this is refused.
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's backlog, holding no
    /// file handle of ours.
    pub max_connections: usize,
}

impl Limits {
    /// For an endpoint only Prometheus and people's browsers call: no uploads.
    #[cfg(feature = "fleet")]
    pub fn scrapes() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }

    pub fn new(config: &ApiSection) -> Self {
        Self {
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            body_timeout: Duration::from_millis(config.body_timeout_ms),
            max_connections: config.max_connections,
        }
    }
}

/// A router served on a thread of its own (a small tokio runtime); [`Server::stop`]
/// finishes open requests and returns. The station's API, the plant view and the ingest's
/// metrics are each one.
#[derive(Debug)]
pub struct Server {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub address: SocketAddr,
}

impl Server {
    /// Binds `listen` (failing here, before anything runs, if the port is taken) and serves
    /// on threads named `name`.
    pub fn start(
        name: &'static str,
        listen: SocketAddr,
        app: Router,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("configuring the {name} socket"))?;
        let address = listener
            .local_addr()
            .with_context(|| format!("reading the {name} address"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name(name)
            .enable_all()
            .build()
            .with_context(|| format!("starting the {name} runtime"))?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, app, limits, stopped).await,
                        Err(e) => tracing::error!("{name} server failed: {e}"),
                    }
                });
            })
            .with_context(|| format!("starting the {name} thread"))?;
        Ok(Self {
            shutdown: Some(shutdown),
            thread: Some(thread),
            address,
        })
    }

    pub fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a server thread panicked");
        }
    }
}

/// Serves `app` until `stop` fires, then lets open requests finish (for at most
/// [`SHUTDOWN_GRACE`]) while idle connections are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: oneshot::Receiver<()>,
) {
    let app = app.layer(middleware::from_fn_with_state(
        limits.body_timeout,
        body_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut stop = stop;
    let mut failed_accepts = 0_u64;
    loop {
        // A slot first, then the accept: beyond the cap a client waits to be accepted.
        let next = async {
            let slot = Arc::clone(&slots).acquire_owned().await;
            (slot, listener.accept().await)
        };
        let Some((slot, accepted)) = until_stopped(next, &mut stop).await else {
            break;
        };
        let Ok(slot) = slot else { break };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                failed_accepts += 1;
                // Once per doubling: a station out of file handles fails every accept.
                if failed_accepts.is_power_of_two() {
                    tracing::warn!(failed_accepts, "API cannot accept a connection: {e}");
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("API connection closed: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "API stopped with requests still open"
        );
    }
}

/// `work`'s output, or None once `stop` fires first.
async fn until_stopped<T>(
    work: impl Future<Output = T>,
    stop: &mut oneshot::Receiver<()>,
) -> Option<T> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if Pin::new(&mut *stop).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Gives each request body `limit` to arrive whole, so a client trickling one byte at a
/// time cannot hold a connection; the handler answers 400 with the reason once it is up.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    next.run(request.map(|body| Body::new(Deadline::new(body, limit))))
        .await
}

/// A body that fails once its deadline has passed.
struct Deadline {
    body: Body,
    expired: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl Deadline {
    fn new(body: Body, limit: Duration) -> Self {
        Self {
            body,
            expired: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if self.expired.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the request body did not arrive whole within {} ms ([api] body_timeout_ms)",
                self.limit.as_millis()
            );
            return Poll::Ready(Some(Err(axum::Error::new(message))));
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
