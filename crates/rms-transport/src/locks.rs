//! The one policy for a poisoned lock: go on with the data.
//!
//! A lock is poisoned when a thread panicked while holding it. Every lock of the node guards
//! data that is replaced or changed in one step (a status snapshot, a ring of feed entries, a
//! table of links), so what a panicking holder left is a whole value, and the panic itself is a
//! bug already reported by the panic hook. Refusing the lock from then on would turn one bug into
//! a node that drops events or answers stale defaults; so every lock of this crate is taken
//! through these three functions, which never fail.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `lock`, poisoned or not.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `lock`, poisoned or not.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
