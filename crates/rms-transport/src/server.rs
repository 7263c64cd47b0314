use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

use crate::api;
use crate::node::Node;

/// Serves the node's API on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (their writes are committed before they answer), and returns.
pub async fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(api::routes(node))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Connections waiting to be accepted before the kernel refuses new ones.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` for [`serve`]. Accepted connections inherit `TCP_NODELAY` from the listening
/// socket: a node sends small messages in quick succession (an ack, then a broadcast), and with
/// Nagle's algorithm the second waits for the peer's delayed ACK, about 40 ms on Linux.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
