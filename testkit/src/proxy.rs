//! A loopback TCP proxy a test can cut, freeze and restore: a database (or
//! any server) that goes away and comes back, as far as whoever connects
//! through the proxy can tell. Cut, it closes every open connection and
//! refuses new ones (its port stops listening); restored, it listens on the
//! same port again. Frozen, its open connections stop carrying bytes but
//! stay open, as when a peer's host vanishes without a word; new ones work.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    port: u16,
    target: SocketAddr,
    /// Cancelled when the proxy is cut: ends the listener and every connection.
    current: Arc<Mutex<CancellationToken>>,
    /// Cancelled when the proxy is frozen: the connections open then stop.
    freeze: Arc<Mutex<CancellationToken>>,
    stopped: CancellationToken,
}

impl TcpProxy {
    /// A proxy on a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a free loopback port");
        let port = listener.local_addr().unwrap().port();
        let proxy = TcpProxy { port, target, current: Arc::default(), freeze: Arc::default(), stopped: CancellationToken::new() };
        proxy.serve(listener);
        proxy
    }

    /// A proxy to the PostgreSQL server of `database_url`; see [`TcpProxy::url`].
    pub async fn to_database(database_url: &str) -> Self {
        let url = reqwest::Url::parse(database_url).expect("a database URL");
        let host = url.host_str().unwrap_or("127.0.0.1").replace("localhost", "127.0.0.1");
        let target = SocketAddr::new(host.parse().expect("a loopback database address"), url.port().unwrap_or(5432));
        TcpProxy::start(target).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `database_url` through the proxy.
    pub fn url(&self, database_url: &str) -> String {
        let mut url = reqwest::Url::parse(database_url).expect("a database URL");
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        let mut current = self.current.lock().unwrap();
        current.cancel();
        *current = CancellationToken::new();
    }

    /// Stops carrying bytes on every open connection, keeping them open
    /// (until cut); connections made afterwards work.
    pub fn freeze(&self) {
        let mut freeze = self.freeze.lock().unwrap();
        freeze.cancel();
        *freeze = CancellationToken::new();
    }

    /// Listens again after [`TcpProxy::cut`].
    pub fn restore(&self) {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], self.port))).expect("the proxy's port again");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let token = self.current.lock().unwrap().clone();
        let (target, stopped, freeze) = (self.target, self.stopped.clone(), self.freeze.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    _ = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let token = token.clone();
                let frozen = freeze.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = token.cancelled() => {}
                        // The copy is no longer polled; both sockets stay open until cut.
                        _ = frozen.cancelled() => token.cancelled().await,
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stopped.cancel();
        self.current.lock().unwrap().cancel();
    }
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(128)
}
