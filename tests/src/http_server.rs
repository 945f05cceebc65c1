//! One HTTP/1 test server: a loopback listener served by a handler on its own thread and
//! current-thread runtime (so it works from sync and async tests alike), stopped and joined
//! when dropped. The stubs of the harness that speak plain HTTP (the OAuth2 token endpoint, the
//! hostile control plane) are each a handler over it.

use std::convert::Infallible;
use std::future::Future;
use std::net::TcpListener;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};

/// A running server; dropping it stops accepting, closes the connections and joins the thread.
#[derive(Debug)]
pub struct ServerThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `listener` (already bound) with `handle`, one call per request, on a thread named
    /// `name`.
    pub fn spawn<H, Fut, B>(name: &str, listener: TcpListener, handle: H) -> Result<ServerThread>
    where
        H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        listener
            .set_nonblocking(true)
            .with_context(|| format!("{name}: set_nonblocking"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("{name}: building its runtime"))?;
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let handle = handle.clone();
                                tokio::spawn(async move {
                                    let service = hyper::service::service_fn(handle);
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
                // Dropping the runtime here cancels the connection tasks and closes sockets.
            })
            .with_context(|| format!("{name}: spawning its thread"))?;
        Ok(ServerThread {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
