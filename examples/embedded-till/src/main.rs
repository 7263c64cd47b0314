//! An integrator's first program: a till app that embeds rms in-process.
//!
//! It starts a store of two devices in this one process (two [`Node`]s with in-memory databases,
//! serving each other on 127.0.0.1), waits for one to become master, creates a product there,
//! sells the last unit on the other device, and prints what the sync core tells the app on the
//! way: the role change, the master's verdict on the sale, and the refusal of a sale that can no
//! longer be made. `make test` runs it; it exits non-zero if any step does not happen within its
//! deadline.
//!
//! Run it: `cargo run -p embedded-till`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use rms_transport::domain::{DeviceId, NewProduct, NewSale, NewSaleLine};
use rms_transport::{Command, Node, NodeConfig, NodeError, Notification, Role, StorageError};
use tokio::sync::broadcast;

/// Every step must happen within this long.
const STEP_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listeners = [bind().await?, bind().await?];
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(tokio::net::TcpListener::local_addr)
        .collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    let mut feeds = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let me = addrs[index];
        let other = addrs[1 - index];
        let device_id = u16::try_from(index + 1)?;
        let config = NodeConfig {
            advertise: format!("https://{me}"),
            peers: vec![format!("https://{other}")],
            // The first device is the better-ranked: it becomes master.
            priority: if index == 0 { 10 } else { 0 },
            heartbeat_interval_ms: 100,
            master_timeout_ms: 600,
            sync_interval_ms: 1_000,
            ..NodeConfig::lone(DeviceId::new(device_id).context("device id")?, "till")
        };
        let node = Node::start(config).await.context("start a node")?;
        feeds.push(node.subscribe());
        // Devices link over their store ports (TLS with device certificates); an app of the
        // same machine would use `rms_transport::serve` on loopback for the REST API.
        let store_port =
            rms_transport::serve_store(listener, node.clone(), std::future::pending())?;
        tokio::spawn(store_port);
        nodes.push(node);
    }
    let (master, till) = (&nodes[0], &nodes[1]);
    let (master_feed, till_feed) = feeds.split_at_mut(1);
    let (master_feed, till_feed) = (&mut master_feed[0], &mut till_feed[0]);

    let role = wait_for(master_feed, "device 1 becomes master", |n| {
        matches!(
            n,
            Notification::RoleChanged {
                role: Role::Master,
                ..
            }
        )
    })
    .await?;
    println!("device 1: {role:?}");

    let tea = NewProduct {
        sku: "tea".into(),
        name: "Green tea".into(),
        price_cents: 350,
        stock: 1,
        user_id: Some("manager".into()),
    };
    let created = master.local_write(Command::CreateProduct(tea)).await?;
    // Its place in the master log (the devices' certificates came first).
    let at = created
        .recorded
        .event
        .master_seq
        .context("the master logs its own write at once")?;
    println!("device 1: created tea, 1 in stock (log entry {at})");
    wait_for(
        till_feed,
        "the product reaches device 2",
        |n| matches!(n, Notification::LogAdvanced { log_head } if *log_head >= at),
    )
    .await?;

    // The last unit: critical, so device 2 pushes it at once and the master decides it.
    let done = till.local_write(Command::Sell(sale())).await?;
    let sale_id = done.recorded.event.event_id;
    println!("device 2: sold the last tea as {sale_id}, pending the master's verdict");
    let verdict = wait_for(
        till_feed,
        "the master's verdict",
        |n| matches!(n, Notification::Decided(v) if v.event_id == sale_id),
    )
    .await?;
    println!("device 2: {verdict:?}");

    // Out of stock now, on this device too: refused at once, nothing recorded.
    match till.local_write(Command::Sell(sale())).await {
        Err(NodeError::Storage(StorageError::Refused { reason, message })) => {
            println!("device 2: a second tea is refused at once: {reason} ({message})");
        }
        Ok(done) => bail!(
            "a sale with no stock left was recorded: {:?}",
            done.recorded
        ),
        Err(other) => return Err(other.into()),
    }

    for node in &nodes {
        node.shutdown().await?;
    }
    println!("stopped cleanly");
    Ok(())
}

fn sale() -> NewSale {
    NewSale {
        user_id: "cashier-2".into(),
        lines: vec![NewSaleLine {
            sku: "tea".into(),
            qty: 1,
        }],
    }
}

async fn bind() -> anyhow::Result<tokio::net::TcpListener> {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    rms_transport::bind(any_port).context("listen on 127.0.0.1")
}

/// The first notification on `feed` that `wanted` accepts, within [`STEP_DEADLINE`].
async fn wait_for(
    feed: &mut broadcast::Receiver<Notification>,
    what: &str,
    wanted: impl Fn(&Notification) -> bool,
) -> anyhow::Result<Notification> {
    let waiting = async {
        loop {
            match feed.recv().await {
                Ok(notification) if wanted(&notification) => return Ok(notification),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => bail!("the node stopped"),
            }
        }
    };
    tokio::time::timeout(STEP_DEADLINE, waiting)
        .await
        .with_context(|| format!("{what}: not within {STEP_DEADLINE:?}"))?
}
