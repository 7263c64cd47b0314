//! The `devices` table: the store's roster as this device knows it.

use rms_domain::{Device, DeviceId, Role};
use rusqlite::{Connection, params};

use crate::error::StorageError;

/// Inserts or updates a device. `online` is not stored: it is a live fact the driver knows.
pub fn put(conn: &Connection, device: &Device) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO devices (device_id, name, role, advertise, priority, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (device_id) DO UPDATE SET name = excluded.name, role = excluded.role,
         advertise = excluded.advertise, priority = excluded.priority,
         last_seen = COALESCE(excluded.last_seen, devices.last_seen)",
    )?
    .execute(params![
        device.device_id.get(),
        device.name,
        device.role.as_str(),
        device.advertise,
        device.priority,
        device.last_seen,
    ])?;
    Ok(())
}

/// Every known device by id, with `online` false (the caller knows who is connected).
pub fn list(conn: &Connection) -> Result<Vec<Device>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, name, role, advertise, priority, last_seen FROM devices ORDER BY device_id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, u16>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, i32>(4)?,
            row.get::<_, Option<String>>(5)?,
        ))
    })?;
    rows.map(|raw| {
        let (device_id, name, role, advertise, priority, last_seen) = raw?;
        let bad = |e: String| StorageError::corrupt("devices", e);
        Ok(Device {
            device_id: DeviceId::new(device_id).ok_or_else(|| bad("device_id 0".into()))?,
            name,
            role: role.parse::<Role>().map_err(|e| bad(e.to_string()))?,
            advertise,
            priority,
            online: false,
            last_seen,
        })
    })
    .collect()
}
