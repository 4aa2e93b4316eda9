//! The fault proxy: one per directed peer link i→j. It listens on its own port, node i's
//! config names that port as node j's address, and it forwards every byte to node j's
//! replication port, unless the test says otherwise:
//!
//! - `pass`: forward at once;
//! - `cut`: close every open connection and close new ones the moment they are accepted;
//! - `delay(d)`: forward each chunk d after it arrived (latency, not a bandwidth cap);
//! - `restore`: back to `pass`.
//!
//! Links are one-way (i dials j to send), so cutting i→j is a one-way cut, and cutting both
//! i→j and j→i partitions the pair.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Cut,
    Delay(Duration),
}

/// A running proxy; dropping it stops accepting and closes its connections.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a fresh loopback port and forwards to `upstream`.
    pub fn start(runtime: &tokio::runtime::Runtime, upstream: SocketAddr) -> Proxy {
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind a proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, watching) = watch::channel(Mode::Pass);
        let accept = runtime.spawn(accept_loop(listener, upstream, watching));
        Proxy { addr, mode, accept }
    }

    /// Where the dialing node is told the peer listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    pub fn delay(&self, d: Duration) {
        self.mode.send_replace(Mode::Delay(d));
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Pass);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Connections watch the mode: a cut closes them, then the listener goes.
        self.mode.send_replace(Mode::Cut);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *mode.borrow() == Mode::Cut {
            drop(inbound);
            continue;
        }
        tokio::spawn(connection(inbound, upstream, mode.clone()));
    }
}

/// Forwards one connection both ways until either end closes or the link is cut.
async fn connection(inbound: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(outbound) = TcpStream::connect(upstream).await else {
        return; // the peer is down: the dialer sees its connection close
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let (up, down) = (mode.clone(), mode.clone());
    let both_ways =
        async { tokio::join!(pipe(in_read, out_write, up), pipe(out_read, in_write, down)) };
    tokio::select! {
        _ = mode.wait_for(|m| *m == Mode::Cut) => {}
        _ = both_ways => {}
    }
    // Every half is dropped here, which closes both sockets.
}

/// Copies `from` to `to`, holding each chunk back by the delay in force when it arrived.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: watch::Receiver<Mode>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = match *mode.borrow() {
                Mode::Delay(d) => d,
                Mode::Pass | Mode::Cut => Duration::ZERO,
            };
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
