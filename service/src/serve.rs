//! Running a service: its HTTP server and background tasks, stopped together.
//!
//! [`Server::bind`] listens on an address (failing at once, with the address, when it
//! cannot), serves a router until shutdown, and runs the service's other tasks beside it
//! ([`Server::spawn`]). The first task that fails stops the others (through a child of the
//! shutdown token) and is the error [`Server::stopped`] returns once they have all ended.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fleuve_service::serve::ServeError> {
//! use axum::{routing::get, Router};
//! use fleuve_service::serve::Server;
//! use tokio_util::sync::CancellationToken;
//!
//! let shutdown = CancellationToken::new();
//! let router = Router::new().route("/", get(|| async { "hello" }));
//! let server = Server::bind("example", "127.0.0.1:0".parse().unwrap(), router, &shutdown).await?;
//! println!("listening on {}", server.addr());
//! shutdown.cancel();
//! server.stopped().await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinSet;
/// The shutdown signal every service takes (re-exported for services that name no other
/// `tokio_util` item).
pub use tokio_util::sync::CancellationToken;

/// The error of a service task, as the service reports it.
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a service could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{service}: cannot listen on {addr} (is another instance running?)")]
    Bind {
        service: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{service}: {task} failed")]
    Task {
        service: &'static str,
        task: &'static str,
        source: TaskError,
    },
    #[error("{service}: {task} panicked")]
    Panicked {
        service: &'static str,
        task: &'static str,
    },
}

/// A running service: its HTTP server and background tasks.
#[derive(Debug)]
pub struct Server {
    service: &'static str,
    addr: SocketAddr,
    /// Cancelled at shutdown, or when a task fails.
    stop: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), TaskError>)>,
}

impl Server {
    /// Listens on `addr` and serves `router` until `shutdown` (or a failed task) stops it,
    /// finishing the requests in flight.
    pub async fn bind(
        service: &'static str,
        addr: SocketAddr,
        router: Router,
        shutdown: &CancellationToken,
    ) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                service,
                addr,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(addr);
        tracing::info!(service, %addr, "listening");
        let mut server = Self {
            service,
            addr,
            stop: shutdown.child_token(),
            tasks: JoinSet::new(),
        };
        let stop = server.stop.clone();
        server.spawn("HTTP server", async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .map_err(TaskError::from)
        });
        Ok(server)
    }

    /// The address it listens on (the port chosen when `addr` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token that stops this service: cancelled at shutdown or when one of its tasks
    /// fails. Background tasks end when it is cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` beside the server; its failure stops the service.
    pub fn spawn<F, E>(&mut self, task: &'static str, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        self.tasks
            .spawn(async move { (task, future.await.map_err(Into::into)) });
    }

    /// Waits until every task has ended: `Ok` after a shutdown, else the first failure
    /// (which stopped the other tasks).
    pub async fn stopped(mut self) -> Result<(), ServeError> {
        let mut failure = None;
        while let Some(joined) = self.tasks.join_next().await {
            let error = match joined {
                Ok((_, Ok(()))) => {
                    // A task that ends by itself (the server after shutdown) ends the service.
                    self.stop.cancel();
                    continue;
                }
                Ok((task, Err(source))) => ServeError::Task {
                    service: self.service,
                    task,
                    source,
                },
                Err(_) => ServeError::Panicked {
                    service: self.service,
                    task: "a task",
                },
            };
            tracing::error!(service = self.service, error = %error, "stopping the service");
            self.stop.cancel();
            failure.get_or_insert(error);
        }
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn a_failed_task_stops_the_server_and_is_the_error() {
        let shutdown = CancellationToken::new();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let mut server = Server::bind("test", any_port(), router, &shutdown)
            .await
            .unwrap();
        let stop = server.stop_token();
        server.spawn("waiter", async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        server.spawn("broken", async {
            Err(std::io::Error::other("the store is gone"))
        });
        let e = server.stopped().await.unwrap_err();
        assert_eq!(e.to_string(), "test: broken failed");
        assert!(!shutdown.is_cancelled(), "only this service stopped");
    }

    #[tokio::test]
    async fn a_taken_address_is_named() {
        let shutdown = CancellationToken::new();
        let first = Server::bind("one", any_port(), Router::new(), &shutdown)
            .await
            .unwrap();
        let e = Server::bind("two", first.addr(), Router::new(), &shutdown)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&first.addr().to_string()), "{e}");
        shutdown.cancel();
        first.stopped().await.unwrap();
    }
}
