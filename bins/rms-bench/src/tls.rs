//! T1 (issue #14): a mutual TLS 1.3 handshake between two devices on loopback, with the pinned
//! verification of `rms_transport::tls`, against a plain TCP connection in the same round. Both
//! are measured from `connect` to the first byte echoed back, so the difference is the
//! handshake: key exchange, two certificates, two signatures and their checks.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rms_transport::identity::Identity;
use rms_transport::tls::{self, Trusted};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::report::{Row, percentile};
use crate::scenarios::Bench;

/// Reads one byte and writes it back.
async fn echo_one(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<()> {
    let mut byte = [0_u8; 1];
    stream.read_exact(&mut byte).await?;
    stream.write_all(&byte).await?;
    stream.flush().await
}

/// Sends one byte and waits for it to come back.
async fn ping(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<()> {
    stream.write_all(b"x").await?;
    stream.flush().await?;
    let mut byte = [0_u8; 1];
    stream.read_exact(&mut byte).await?;
    Ok(())
}

/// A loopback server that answers each connection with [`echo_one`], through TLS if given.
async fn serve(acceptor: Option<TlsAcceptor>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => echo_one(tls).await,
                        Err(err) => Err(err),
                    },
                    None => echo_one(stream).await,
                };
            });
        }
    });
    Ok(addr)
}

/// Milliseconds from `connect` to the echoed byte, `samples` times.
async fn connect_times(
    addr: std::net::SocketAddr,
    connector: Option<&TlsConnector>,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        match connector {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(tls::SERVER_NAME)?;
                let tls = connector.connect(name, stream).await.context("handshake")?;
                ping(tls).await?;
            }
            None => ping(stream).await?,
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

pub async fn t1_handshake(bench: &Bench) -> anyhow::Result<Row> {
    let samples = if bench.large { 1000 } else { 200 };
    let mut row = Row::new(
        "T1",
        "mutual TLS 1.3 handshake + 1-byte echo on loopback, p99",
        "ms",
    );
    let (a, b) = (Identity::ephemeral()?, Identity::ephemeral()?);
    let server = tls::server_config(&a, Trusted::new([b.fingerprint()]))?;
    let client = tls::client_config(&b, Trusted::new([a.fingerprint()]))?;
    let tls_addr = serve(Some(TlsAcceptor::from(Arc::new(server)))).await?;
    let plain_addr = serve(None).await?;
    let connector = TlsConnector::from(Arc::new(client));
    let mut p50s = Vec::new();
    for _ in 0..bench.rounds {
        let mut plain = connect_times(plain_addr, None, samples).await?;
        let mut secured = connect_times(tls_addr, Some(&connector), samples).await?;
        p50s.push(percentile(&mut secured.clone(), 50.0));
        row.round(percentile(&mut secured, 99.0), percentile(&mut plain, 99.0));
    }
    row.extra = serde_json::json!({
        "p50_ms": crate::report::median(&p50s),
        "samples_per_round": samples,
        "reference": "plain TCP connect + 1-byte echo on loopback, p99",
    });
    Ok(row)
}
