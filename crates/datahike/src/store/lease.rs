//! A writer lock for any store: a lease under the key `locks/writer`, taken and given back
//! by compare-and-set. It holds an owner id and an expiry; a holder that dies loses it after
//! [`LEASE_MILLIS`]. It keeps writers from colliding; it does not make a collision safe (the
//! conditional writes of the [`super::Store`] contract do). A backend whose handles are cheap
//! to clone implements `lock_writer` as `lease::acquire(Arc::new(self.clone()))`.
//!
//! A lease held longer than a third of its term (a garbage collection's sweep, a rewrite of
//! many node packs) is renewed by one background thread per process, so it lapses only when
//! its holder dies or cannot reach the store for a whole term, never because the work under
//! it is long.

use super::{Store, StoreResult, WriterGuard};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The key of the lease.
pub const LEASE_KEY: &str = "locks/writer";
/// How long a lease lasts without renewal.
pub const LEASE_MILLIS: u64 = 30_000;

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A lease given back: free (its expiry is 0).
const RELEASED: &[u8] = b"released 0";

/// `<owner uuid> <expiry ms>`
fn encode(owner: &uuid::Uuid, expiry: u64) -> Vec<u8> {
    format!("{owner} {expiry}").into_bytes()
}

fn expiry_of(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.split(' ').nth(1)?.parse().ok()
}

/// Waits until the lease is free or expired, then takes it. Dropping the guard gives it back.
pub fn acquire(store: Arc<dyn Store>) -> StoreResult<WriterGuard> {
    acquire_at(store, LEASE_KEY)
}

/// Like [`acquire`], for a lease under another key (e.g. the lock of the node packs'
/// rewrites, see [`super::PackedStore`]).
pub fn acquire_at(store: Arc<dyn Store>, key: &str) -> StoreResult<WriterGuard> {
    acquire_for(store, key, LEASE_MILLIS)
}

/// [`acquire_at`] with a term of `term` milliseconds.
fn acquire_for(store: Arc<dyn Store>, key: &str, term: u64) -> StoreResult<WriterGuard> {
    let owner = uuid::Uuid::new_v4();
    // A lease given back is free: taken straight away by compare-and-set, without reading it
    // first (on an object store that remembers the version it wrote, one request).
    let expiry = now_millis() + term;
    let mine = encode(&owner, expiry);
    if store.compare_and_set(key, Some(RELEASED), &mine)? {
        return Ok(hold(store, key, owner, term, mine, expiry));
    }
    let mut backoff = Duration::from_millis(1);
    loop {
        let current = store.get(key)?;
        let free = match &current {
            None => true,
            Some(bytes) => expiry_of(bytes).is_none_or(|expiry| expiry <= now_millis()),
        };
        let expiry = now_millis() + term;
        let mine = encode(&owner, expiry);
        if free && store.compare_and_set(key, current.as_deref(), &mine)? {
            return Ok(hold(store, key, owner, term, mine, expiry));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// The guard of a lease just taken, watched by the renewer.
fn hold(store: Arc<dyn Store>, key: &str, owner: uuid::Uuid, term: u64, bytes: Vec<u8>, expiry: u64) -> WriterGuard {
    let lease = Arc::new(Held {
        store,
        key: key.to_owned(),
        owner,
        term,
        state: Mutex::new(HeldState { bytes, expiry, released: false }),
    });
    renewer::watch(&lease);
    WriterGuard::new(Box::new(Lease(lease)))
}

/// A lease this process holds.
struct Held {
    store: Arc<dyn Store>,
    key: String,
    owner: uuid::Uuid,
    /// Its term in milliseconds.
    term: u64,
    /// Locked by the renewer while it renews and by the holder while it gives the lease back,
    /// so that neither works from bytes the other replaced.
    state: Mutex<HeldState>,
}

struct HeldState {
    /// What the store holds under the key while this process has the lease.
    bytes: Vec<u8>,
    expiry: u64,
    /// Given back, or taken over by another process after it lapsed: not renewed again.
    released: bool,
}

impl Held {
    /// Extends the lease by a full term when less than two thirds of it is left. A lease
    /// found taken over (it lapsed while the store was out of reach) is given up.
    fn renew_if_due(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.released || state.expiry.saturating_sub(now_millis()) > self.term * 2 / 3 {
            return;
        }
        let expiry = now_millis() + self.term;
        let mine = encode(&self.owner, expiry);
        match self.store.compare_and_set(&self.key, Some(&state.bytes), &mine) {
            Ok(true) => {
                state.bytes = mine;
                state.expiry = expiry;
            }
            Ok(false) => state.released = true,
            // The store is out of reach: tried again on the next round, while the lease lasts.
            Err(_) => {}
        }
    }
}

/// Gives the lease back on drop, by compare-and-set (a lease another writer took over after
/// it expired is left alone).
struct Lease(Arc<Held>);

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.released {
            state.released = true;
            // An expiry of 0: the next writer takes the lease at once. On failure the lease
            // expires by itself.
            let _ = self.0.store.compare_and_set(&self.0.key, Some(&state.bytes), RELEASED);
        }
    }
}

mod renewer {
    //! The one thread per process that renews the leases held long. It runs while any lease
    //! is held and ends when none is.

    use super::{Arc, Duration, Held, Mutex, OnceLock, PoisonError, Weak};

    struct Watched {
        leases: Vec<Weak<Held>>,
        running: bool,
    }

    fn watched() -> &'static Mutex<Watched> {
        static WATCHED: OnceLock<Mutex<Watched>> = OnceLock::new();
        WATCHED.get_or_init(|| Mutex::new(Watched { leases: Vec::new(), running: false }))
    }

    /// Renews `lease` while its holder keeps it.
    pub(super) fn watch(lease: &Arc<Held>) {
        let mut watched = watched().lock().unwrap_or_else(PoisonError::into_inner);
        watched.leases.push(Arc::downgrade(lease));
        if !watched.running {
            watched.running = true;
            let started = std::thread::Builder::new().name("datahike-lease".into()).spawn(run);
            if started.is_err() {
                // No thread: leases still work, they just are not renewed.
                watched.running = false;
            }
        }
    }

    fn run() {
        loop {
            let (leases, tick) = {
                let mut watched = watched().lock().unwrap_or_else(PoisonError::into_inner);
                watched.leases.retain(|lease| lease.strong_count() > 0);
                if watched.leases.is_empty() {
                    watched.running = false;
                    return;
                }
                let leases: Vec<Arc<Held>> = watched.leases.iter().filter_map(Weak::upgrade).collect();
                // Six looks per term of the shortest lease: each is renewed when a third of
                // its term has passed, well before it lapses.
                let tick = leases.iter().map(|lease| lease.term / 6).min().unwrap_or(1).max(1);
                (leases, tick)
            };
            for lease in &leases {
                lease.renew_if_due();
            }
            drop(leases);
            std::thread::sleep(Duration::from_millis(tick));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn holder(store: &MemoryStore, key: &str) -> (uuid::Uuid, u64) {
        let bytes = store.get(key).unwrap().expect("the lease is stored");
        let text = String::from_utf8(bytes).unwrap();
        let (owner, expiry) = text.split_once(' ').unwrap();
        (owner.parse().unwrap_or(uuid::Uuid::nil()), expiry.parse().unwrap())
    }

    /// A lease held for several terms stays its holder's (renewed before it lapses), keeps
    /// another taker waiting, and is free at once when given back.
    #[test]
    fn a_lease_held_long_is_renewed_and_given_back() {
        let store = MemoryStore::new();
        let term = 900;
        let guard = acquire_for(Arc::new(store.clone()), "locks/test", term).unwrap();
        let (owner, first_expiry) = holder(&store, "locks/test");
        std::thread::sleep(Duration::from_millis(term * 3));
        let (still, expiry) = holder(&store, "locks/test");
        assert_eq!(still, owner, "nobody took the lease over");
        assert!(expiry > first_expiry, "the expiry moved on");
        assert!(expiry > now_millis(), "the lease has not lapsed after three terms");

        let contender = {
            let store = store.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let _guard = acquire_for(Arc::new(store), "locks/test", term).unwrap();
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(term * 2));
        drop(guard);
        let waited = contender.join().unwrap();
        assert!(waited >= Duration::from_millis(term * 2), "the contender waited for the holder: {waited:?}");
        assert_eq!(store.get("locks/test").unwrap().as_deref(), Some(RELEASED), "given back after use");
    }

    /// A lease whose holder vanished without giving it back (a killed process: nothing renews
    /// it) is taken once it expires.
    #[test]
    fn an_abandoned_lease_is_taken_after_it_expires() {
        let store = MemoryStore::new();
        let stale = encode(&uuid::Uuid::new_v4(), now_millis() + 200);
        assert!(store.compare_and_set("locks/test", None, &stale).unwrap());
        let started = std::time::Instant::now();
        let guard = acquire_for(Arc::new(store.clone()), "locks/test", 10_000).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150), "taken only after the expiry");
        assert_ne!(store.get("locks/test").unwrap(), Some(stale));
        drop(guard);
    }
}
