use std::future::Future;

use tokio::net::TcpListener;

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
