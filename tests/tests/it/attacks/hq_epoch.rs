//! Finding 2: a store's stolen token posted one empty batch with the maximal epoch, head office
//! took it (`200`), and the store's real master got `409 stale_epoch` for ever. Head office now
//! bounds the epoch a batch may raise (`rms_hq::fence`), an empty batch never raises it, and
//! the operator clears a wrong fence that got through with `rms-hq stores reset-epoch`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rms_hq::fence::EPOCH_AHEAD_MAX_MS;
use rms_tests::hq::{HqProcess, hq_command};
use rms_tests::pg::Postgres;
use rms_tests::{NodeProcess, wait_for};
use serde_json::{Value, json};

use crate::hq::{caught_up, create_product, head_office, hq_args, resend_batch, sell};

const DEADLINE: Duration = Duration::from_secs(60);

/// Head office's fence for the store: the greatest epoch it took a batch from.
fn fence(pg: &Postgres, store_id: i64) -> Value {
    let sql = format!("SELECT max_epoch FROM hq_stores WHERE store_id = {store_id}");
    serde_json::from_str(&pg.psql("hq", &sql)).unwrap_or(Value::Null)
}

/// Head office's cursor for the store.
fn cursor(pg: &Postgres, store_id: i64) -> i64 {
    let sql = format!("SELECT cursor_seq FROM hq_stores WHERE store_id = {store_id}");
    pg.number("hq", &sql)
}

/// Head office holds the sale, not undone.
fn holds_sale(pg: &Postgres, sale: &Value) -> bool {
    let id = sale["sale_id"].as_str().expect("a sale id");
    pg.number(
        "hq",
        &format!("SELECT count(*) FROM hq_sales WHERE sale_id = '{id}'"),
    ) == 1
}

/// Ingest errors of `kind` recorded for the store.
fn recorded(pg: &Postgres, store_id: i64, kind: &str) -> i64 {
    pg.number(
        "hq",
        &format!(
            "SELECT count(*) FROM hq_ingest_errors WHERE store_id = {store_id} AND kind = '{kind}'"
        ),
    )
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    u64::try_from(since.expect("a clock after 1970").as_millis()).expect("ms fit")
}

/// `batch` with its epoch's term set to `term`.
fn with_term(batch: &[u8], term: u64) -> Vec<u8> {
    let mut batch: Value = serde_json::from_slice(batch).expect("a batch");
    batch["epoch"]["term"] = json!(term);
    batch.to_string().into_bytes()
}

/// A store of one device uplinking to a fresh head office, with one sale there.
struct Uplinking {
    pg: Postgres,
    url: String,
    store_id: i64,
    token: String,
    hq: HqProcess,
    node: NodeProcess,
    _dir: tempfile::TempDir,
}

fn store_uplinking() -> Uplinking {
    let (pg, url, (store_id, token), hq) = head_office();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = [&["--device-id", "1"][..], &hq_args(&hq, &token)].concat();
    let node = NodeProcess::start(dir.path(), &args);
    create_product(&node, "tea", 300, 50);
    sell(&node, "tea", 1);
    wait_for("head office holds the log", DEADLINE, || caught_up(&node));
    Uplinking {
        pg,
        url,
        store_id,
        token,
        hq,
        node,
        _dir: dir,
    }
}

/// The attack as it was run: the store's token, an empty batch at head office's cursor, the
/// maximal term. Refused (`409 epoch_out_of_range`), recorded, nothing changed; so is a term
/// just past the clock bound; an empty batch within the bound is taken but moves no fence; and
/// the real master's next sale reaches head office.
#[test]
fn a_stolen_store_token_cannot_lock_the_store_out_of_head_office_with_a_maximal_epoch() {
    let Uplinking {
        pg,
        store_id,
        token,
        hq,
        node,
        url: _,
        _dir,
    } = store_uplinking();
    let fenced = fence(&pg, store_id);
    assert!(
        fenced["term"].is_u64(),
        "head office heard the master: {fenced}"
    );
    let empty = resend_batch(&pg, store_id, cursor(&pg, store_id));
    let post = |body: &[u8]| hq.call("POST", "/hq/v1/uplink/batch", &token, Some(body));

    let (maximal, maximal_answer) = post(&with_term(&empty, u64::MAX));
    let (ahead, ahead_answer) = post(&with_term(&empty, now_ms() + 2 * EPOCH_AHEAD_MAX_MS));
    // A term of the clock's scale, as a new incarnation's first election makes: within the
    // bound, but an empty batch (a heartbeat) does not raise the fence.
    let (heartbeat, heartbeat_answer) = post(&with_term(&empty, now_ms()));

    let after = sell(&node, "tea", 2);
    wait_for(
        "the sale made after the attack reaches head office",
        DEADLINE,
        || holds_sale(&pg, &after),
    );
    assert_eq!(maximal, 409, "{maximal_answer}");
    assert_eq!(maximal_answer["error"], "epoch_out_of_range");
    assert_eq!(ahead, 409, "{ahead_answer}");
    assert_eq!(ahead_answer["error"], "epoch_out_of_range");
    assert_eq!(heartbeat, 200, "{heartbeat_answer}");
    assert_eq!(heartbeat_answer["cursor"]["max_epoch"], fenced);
    assert_eq!(
        recorded(&pg, store_id, "epoch_out_of_range"),
        1,
        "the refusal is recorded, its repeat within the interval only logged"
    );
    assert_eq!(fence(&pg, store_id), fenced, "the fence did not move");
}

/// An epoch within the bound cannot be told from a real master's: a batch with one made-up
/// entry and a clock-scale term is taken and fences the real master (`stale_epoch`). The
/// operator's `rms-hq stores reset-epoch` clears the fence (recorded as `epoch_reset`); the real
/// master uploads again, and the made-up entry is flagged undone by its truncation.
#[test]
fn an_operator_clears_a_wrong_epoch_with_reset_epoch_and_the_real_master_uploads_again() {
    let Uplinking {
        pg,
        url,
        store_id,
        token,
        hq,
        node,
        _dir,
    } = store_uplinking();
    let fenced = fence(&pg, store_id);
    let at = cursor(&pg, store_id);
    let mut forged: Value =
        serde_json::from_slice(&resend_batch(&pg, store_id, at)).expect("a batch");
    let sql = format!("SELECT entry FROM hq_log WHERE store_id = {store_id} AND master_seq = {at}");
    let mut entry: Value = serde_json::from_str(&pg.psql("hq", &sql)).expect("an entry");
    let term = now_ms();
    forged["epoch"]["term"] = json!(term);
    entry["epoch"] = forged["epoch"].clone();
    entry["event"]["event_id"] = json!("1-999999");
    entry["event"]["master_seq"] = json!(at + 1);
    forged["entries"] = json!([entry]);
    forged["head"] = json!(at + 1);
    let body = forged.to_string().into_bytes();
    let (status, answer) = hq.call("POST", "/hq/v1/uplink/batch", &token, Some(&body));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(fence(&pg, store_id)["term"], term);

    let after = sell(&node, "tea", 3);
    wait_for("the real master is fenced", DEADLINE, || {
        let (_, status) = node.get("/api/v1/sync/status");
        status["head_office"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("stale epoch"))
    });
    assert!(!holds_sale(&pg, &after));

    let out = hq_command(&url, &["stores", "reset-epoch", &store_id.to_string()])
        .expect("stores reset-epoch");
    assert!(
        out.contains(&term.to_string()),
        "it names the fence it cleared: {out}"
    );
    wait_for(
        "the sale reaches head office after the reset",
        DEADLINE,
        || holds_sale(&pg, &after),
    );
    assert_eq!(recorded(&pg, store_id, "epoch_reset"), 1);
    assert_eq!(
        fence(&pg, store_id),
        fenced,
        "the real master's epoch again"
    );
    let undone = format!(
        "SELECT count(*) FROM hq_log WHERE store_id = {store_id} AND seq = 999999 AND undone"
    );
    assert_eq!(pg.number("hq", &undone), 1, "the made-up entry is undone");
}
