//! rms-hq: head office for a chain of rms stores, a stateless service in front of PostgreSQL
//! (the `rms-hq` library crate), and the commands that register and revoke stores and clear a
//! store's epoch fence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rms_hq::server::Hq;
use rms_hq::{Db, stores};

/// rms-hq: receives every store's master log exactly once, into PostgreSQL, and sends the
/// catalogue down. With no command it serves the head-office API under /hq/v1.
#[derive(Debug, Parser)]
#[command(name = "rms-hq", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// PostgreSQL to use (`postgresql://user@host/db`, or `host=/run/postgresql dbname=hq`).
    #[arg(long, env = "RMS_HQ_DATABASE_URL", global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Where to serve the API [default: 127.0.0.1:7880]. Any address but loopback needs
    /// --tls-cert and --tls-key.
    #[arg(long, env = "RMS_HQ_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The token people's routes (catalogue, stores) ask for; at least 16 characters.
    #[arg(long, env = "RMS_HQ_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Head office's certificate chain (PEM), for HTTPS.
    #[arg(long, env = "RMS_HQ_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "RMS_HQ_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applies the schema's migrations and exits (the server applies them at start too).
    Migrate,
    /// Registers, lists and revokes stores; clears a store's epoch fence.
    #[command(subcommand)]
    Stores(StoresCommand),
}

#[derive(Debug, Subcommand)]
enum StoresCommand {
    /// Registers a store; prints its store_id and its token (shown once; stored hashed).
    Add {
        #[arg(long)]
        name: String,
    },
    /// Cuts a store off: its token is refused from now on. Its data stays.
    Revoke { store_id: i64 },
    /// Lists the stores with their uplink's state, as JSON.
    List,
    /// Clears a store's epoch fence, so its real master's next batch is taken: after a stolen
    /// token raised it. Recorded as an ingest error of kind `epoch_reset`.
    ResetEpoch { store_id: i64 },
}

const DEFAULT_LISTEN: &str = "127.0.0.1:7880";

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,tokio_postgres=warn"),
    )
    .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rms-hq: cannot start the runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(run(cli)) {
        eprintln!("rms-hq: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli
        .database_url
        .clone()
        .context("--database-url (or RMS_HQ_DATABASE_URL) is required")?;
    let db = Db::connect(&url).context("the database URL")?;
    db.migrate().await.context("applying the schema")?;
    match cli.command {
        Some(Command::Migrate) => Ok(()),
        Some(Command::Stores(StoresCommand::Add { name })) => {
            let store = stores::add(&db, &name).await?;
            println!("store_id {}", store.store_id);
            println!("token {}", store.token);
            Ok(())
        }
        Some(Command::Stores(StoresCommand::Revoke { store_id })) => {
            stores::revoke(&db, store_id).await?;
            println!("store {store_id} revoked");
            Ok(())
        }
        Some(Command::Stores(StoresCommand::ResetEpoch { store_id })) => {
            match stores::reset_epoch(&db, store_id).await? {
                Some(epoch) => println!(
                    "store {store_id}: epoch fence cleared (it was term {}, master {})",
                    epoch.term, epoch.master_id
                ),
                None => println!("store {store_id}: it had no epoch fence"),
            }
            Ok(())
        }
        Some(Command::Stores(StoresCommand::List)) => {
            println!("{}", serde_json_list(&stores::list(&db).await?)?);
            Ok(())
        }
        None => serve(cli, db).await,
    }
}

fn serde_json_list(list: &[stores::StoreStatus]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(list)?)
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve(cli: Cli, db: Db) -> anyhow::Result<()> {
    let admin_token = cli
        .admin_token
        .context("--admin-token (or RMS_HQ_ADMIN_TOKEN) is required to serve")?;
    let hq = Hq::new(db, &admin_token)?;
    let listen = match cli.listen {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse()?,
    };
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        (None, None) if listen.ip().is_loopback() => None,
        (None, None) => bail!(
            "{listen} is not a loopback address: head office serves it over HTTPS only \
             (--tls-cert and --tls-key)"
        ),
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("rms-hq listening on {scheme}://{local}");
    log::info!("head office listening on {scheme}://{local}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    rms_hq::server::serve(listener, hq, tls, shutdown).await;
    Ok(())
}
