//! The whole content of a node's database, table by table, so that a test can prove that
//! something "changes nothing": it takes [`tables`] before and after, and asserts that
//! [`differences`] is empty. Reading the tables (not a few API answers) means that a write to
//! any table (an audit row, a pending event, the node's own state) counts as a change. Where
//! the node audits what it received whatever it does with it, [`outside_audit`] leaves the
//! audit trail out, and the test checks the audit rows it expects on their own.

use std::collections::{BTreeMap, BTreeSet};

use rms_storage::{Connection, StorageError};

/// Every table of a database by name, each as its rows (every column `quote()`d by SQLite and
/// joined with `, `), sorted: a table's content as a set of rows, whatever order SQLite scans it.
pub type Tables = BTreeMap<String, Vec<String>>;

/// Every row of every table of the database behind `conn` (SQLite's own `sqlite_*` tables
/// included, so that an `AUTOINCREMENT` counter that moved counts as a change).
pub fn tables(conn: &Connection) -> Result<Tables, StorageError> {
    let mut statement =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut tables = Tables::new();
    for name in names {
        let columns = {
            let mut info = conn.prepare(&format!("PRAGMA table_info(\"{name}\")"))?;
            info.query_map([], |row| row.get::<_, String>(1))?
                .collect::<Result<Vec<_>, _>>()?
        };
        let quoted: Vec<String> = columns
            .iter()
            .map(|column| format!("quote(\"{column}\")"))
            .collect();
        let mut select = conn.prepare(&format!(
            "SELECT {} FROM \"{name}\"",
            quoted.join(" || ', ' || ")
        ))?;
        let mut rows = select
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort();
        tables.insert(name, rows);
    }
    Ok(tables)
}

/// What differs between two readings of [`tables`]: one line per table that differs, naming the
/// rows only `before` had and the rows only `after` has. Empty when nothing changed.
pub fn differences(before: &Tables, after: &Tables) -> Vec<String> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let empty = Vec::new();
    names
        .into_iter()
        .filter_map(|name| {
            let old = before.get(name).unwrap_or(&empty);
            let new = after.get(name).unwrap_or(&empty);
            (old != new).then(|| {
                let gone: Vec<&String> = old.iter().filter(|row| !new.contains(row)).collect();
                let added: Vec<&String> = new.iter().filter(|row| !old.contains(row)).collect();
                format!("table {name}: rows gone {gone:?}, rows new {added:?}")
            })
        })
        .collect()
}

/// `tables` without the audit trail: the audit log, its chain in the journal (rows of chain
/// `'audit'`), and SQLite's counter of audit-log ids. Every other table and row stays.
pub fn outside_audit(tables: &Tables) -> Tables {
    let mut rest = tables.clone();
    rest.remove("audit_log");
    for (table, prefix) in [
        ("journal", "'audit', "),
        ("sqlite_sequence", "'audit_log', "),
    ] {
        if let Some(rows) = rest.get_mut(table) {
            rows.retain(|row| !row.starts_with(prefix));
        }
    }
    rest
}
