//! Fault injection for testing: [`FaultStore`], a wrapper over any [`Store`] that fails,
//! delays, tears or reorders its operations on command, and [`PowerLossStore`], an in-memory
//! store that models a power cut at any point inside any operation.
//!
//! **What is modelled.** Both stay inside the [`Store`] contract, because that contract is all
//! the database may rely on: a write that returns `Err` may have left any subset of its
//! entries behind, never a torn entry as seen through `get`. So a *torn* `put_batch` or
//! `delete_batch` applies a seeded subset of its entries and then fails, and a torn
//! `log_append_many` appends a prefix of its records (a log is append-only) and then fails.
//! A torn record *inside* a file log segment, or a pack file cut short, is the file store's
//! own concern: its frames and packs carry checksums and lengths, its files get their names
//! only after `fdatasync`, and the SIGKILL tests (`tests/crash.rs`) and its own unit tests
//! cover that. Neither store here checks the file store's fsync ordering; they check that the
//! database above the trait survives every failure the contract allows.
//!
//! **Determinism.** Every choice (which subset survives, which operation fails at random)
//! comes from a seeded generator, and operations are numbered in the order they reach the
//! wrapper. Called from one thread, a run replays exactly. The connection's log writer and
//! background flushes are threads of their own, so when they run concurrently with the
//! caller the numbering follows the scheduler; a single-threaded caller that waits for each
//! transaction (as `Conn::transact` does) keeps the order fixed.

use super::{AppendFailure, ByteRange, Store, StoreError, StoreResult, WriterGuard};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A small seeded generator (splitmix64): the same seed gives the same choices everywhere.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits make a uniform float in [0, 1).
        #[allow(clippy::cast_precision_loss, reason = "53 bits fit a double exactly")]
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// The kinds of store operation, as [`FaultStore`] counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OpKind {
    /// [`Store::get`], [`Store::get_range`].
    Get,
    /// [`Store::get_many`], [`Store::get_ranges`].
    GetMany,
    /// [`Store::stored_sizes`].
    StoredSizes,
    /// [`Store::list`].
    List,
    /// [`Store::put_batch`].
    PutBatch,
    /// [`Store::delete_batch`].
    DeleteBatch,
    /// [`Store::compare_and_set`].
    CompareAndSet,
    /// [`Store::put_if_absent`].
    PutIfAbsent,
    /// [`Store::log_append`], [`Store::log_append_many`].
    LogAppend,
    /// [`Store::log_read`], [`Store::log_is_current`].
    LogRead,
    /// [`Store::log_discard`], [`Store::log_discard_all`], [`Store::log_delete`].
    LogDiscard,
    /// [`Store::sweep_temporaries`].
    Sweep,
    /// [`Store::lock_writer`].
    LockWriter,
}

impl OpKind {
    /// Whether the operation may change the store.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpKind::PutBatch
                | OpKind::DeleteBatch
                | OpKind::CompareAndSet
                | OpKind::PutIfAbsent
                | OpKind::LogAppend
                | OpKind::LogDiscard
                | OpKind::Sweep
        )
    }
}

/// One operation as a [`FaultStore`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Its number, from 0, in the order operations reached the store.
    pub index: u64,
    /// What it was.
    pub kind: OpKind,
    /// The first key (or log) it named.
    pub key: String,
    /// How many entries it wrote or deleted (records for a log append); 1 for other calls.
    pub entries: usize,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails and changes nothing.
    Fail,
    /// A batch write applies a seeded strict subset of its entries (a prefix of the records
    /// for a log append), then fails; any other operation fails as with [`Fault::Fail`].
    Tear,
    /// The operation takes effect, then reports failure (a write whose acknowledgement was
    /// lost, which the contract allows: "any subset" includes all of it).
    FailAfter,
}

#[derive(Default)]
struct Plan {
    /// Faults by operation number.
    at: BTreeMap<u64, Fault>,
    /// Faults by (kind, number among operations of that kind).
    at_kind: BTreeMap<(OpKind, u64), Fault>,
    /// A fault injected with this probability into operations of these kinds.
    random: Option<(f64, Fault, Vec<OpKind>)>,
    delay: Option<(Option<OpKind>, Duration)>,
    reorder: bool,
}

struct State {
    plan: Plan,
    rng: SplitMix64,
    ops: u64,
    per_kind: BTreeMap<OpKind, u64>,
    injected: u64,
    trace: Option<Vec<OpRecord>>,
}

/// The shared handle that sets a [`FaultStore`]'s plan at run time and reads its counters.
/// Clones drive the same store.
#[derive(Clone)]
pub struct FaultHandle(Arc<Mutex<State>>);

impl FaultHandle {
    /// A plan with no faults whose random choices come from `seed`, for
    /// [`FaultStore::with_handle`].
    pub fn new(seed: u64) -> Self {
        let state = State {
            plan: Plan::default(),
            rng: SplitMix64::new(seed),
            ops: 0,
            per_kind: BTreeMap::new(),
            injected: 0,
            trace: None,
        };
        FaultHandle(Arc::new(Mutex::new(state)))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Injects `fault` into operation number `index` (see [`OpRecord::index`]).
    pub fn fault_op(&self, index: u64, fault: Fault) {
        self.state().plan.at.insert(index, fault);
    }

    /// Injects `fault` into the `n`th operation (from 0, counted since the store was made) of
    /// kind `kind`.
    pub fn fault_nth(&self, kind: OpKind, n: u64, fault: Fault) {
        self.state().plan.at_kind.insert((kind, n), fault);
    }

    /// Injects `fault` into each operation of `kinds` with probability `p` (seeded).
    pub fn fault_randomly(&self, p: f64, fault: Fault, kinds: &[OpKind]) {
        self.state().plan.random = Some((p, fault, kinds.to_vec()));
    }

    /// Delays every operation of `kind` (all when `None`) by `delay` before it runs.
    pub fn delay(&self, kind: Option<OpKind>, delay: Duration) {
        self.state().plan.delay = Some((kind, delay));
    }

    /// Shuffles the entries of every batch write (seeded) before it reaches the inner store:
    /// order inside a batch is not part of the contract.
    pub fn reorder_batches(&self, on: bool) {
        self.state().plan.reorder = on;
    }

    /// Lifts every fault, delay and reordering; counters and the trace stay.
    pub fn lift(&self) {
        self.state().plan = Plan::default();
    }

    /// Starts recording every operation (see [`FaultHandle::trace`]).
    pub fn record(&self) {
        self.state().trace.get_or_insert_with(Vec::new);
    }

    /// The operations recorded since [`FaultHandle::record`].
    pub fn trace(&self) -> Vec<OpRecord> {
        self.state().trace.clone().unwrap_or_default()
    }

    /// How many operations reached the store.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// How many faults were injected.
    pub fn injected(&self) -> u64 {
        self.state().injected
    }

    /// Numbers this operation and decides its fault.
    fn begin(&self, kind: OpKind, key: &str, entries: usize) -> (u64, Option<Fault>, Option<Duration>) {
        let mut state = self.state();
        let index = state.ops;
        state.ops += 1;
        let nth = {
            let count = state.per_kind.entry(kind).or_insert(0);
            *count += 1;
            *count - 1
        };
        if let Some(trace) = state.trace.as_mut() {
            trace.push(OpRecord { index, kind, key: key.to_owned(), entries });
        }
        let mut fault = state.plan.at.remove(&index).or_else(|| state.plan.at_kind.remove(&(kind, nth)));
        if fault.is_none() {
            if let Some((p, f, kinds)) = state.plan.random.clone() {
                if kinds.contains(&kind) && state.rng.chance(p) {
                    fault = Some(f);
                }
            }
        }
        if fault.is_some() {
            state.injected += 1;
        }
        let delay = state.plan.delay.filter(|(k, _)| k.is_none_or(|k| k == kind)).map(|(_, d)| d);
        (index, fault, delay)
    }

    /// A seeded order of `n` entries (identity unless reordering is on).
    fn order(&self, n: usize) -> Vec<usize> {
        let mut state = self.state();
        let mut order: Vec<usize> = (0..n).collect();
        if state.plan.reorder {
            for i in (1..n).rev() {
                let j = usize::try_from(state.rng.below(u64::try_from(i + 1).unwrap_or(u64::MAX))).unwrap_or(0);
                order.swap(i, j);
            }
        }
        order
    }

    /// How many of `n` entries a torn write keeps: a strict subset size, seeded.
    fn kept(&self, n: usize) -> usize {
        usize::try_from(self.state().rng.below(u64::try_from(n).unwrap_or(0))).unwrap_or(0)
    }
}

/// The error of an injected fault: names the operation, its key and its number.
fn injected(index: u64, kind: OpKind, key: &str, fault: Fault) -> StoreError {
    StoreError::Backend {
        backend: "fault-injection",
        key: key.to_owned(),
        reason: format!("injected fault {fault:?} in operation #{index} ({kind:?})"),
    }
}

/// A [`Store`] over `inner` that injects the faults its [`FaultHandle`] plans. With no plan
/// it forwards every call unchanged (the inner store's own log methods included).
pub struct FaultStore<S: Store + ?Sized> {
    inner: Arc<S>,
    handle: FaultHandle,
}

impl<S: Store + ?Sized> FaultStore<S> {
    /// A wrapper over `inner` whose random choices come from `seed`.
    pub fn new(inner: Arc<S>, seed: u64) -> Self {
        FaultStore { inner, handle: FaultHandle::new(seed) }
    }

    /// A wrapper over `inner` driven by `handle` (shared with another wrapper: operations of
    /// both are numbered in one sequence). Two wrappers are two store handles for the
    /// connection registry, so each gets a connection of its own.
    pub fn with_handle(inner: Arc<S>, handle: FaultHandle) -> Self {
        FaultStore { inner, handle }
    }

    /// The handle that plans faults and reads counters.
    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// The store underneath.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Runs `op` unless a fault says otherwise; a [`Fault::FailAfter`] runs it and then fails.
    fn run<T>(&self, kind: OpKind, key: &str, op: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
        let (index, fault, delay) = self.handle.begin(kind, key, 1);
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        match fault {
            None => op(),
            Some(Fault::FailAfter) => {
                op()?;
                Err(injected(index, kind, key, Fault::FailAfter))
            }
            Some(fault) => Err(injected(index, kind, key, fault)),
        }
    }

    /// A batch write of `items` through `write`: reordered, torn or failed as planned.
    fn batch<T: Clone>(
        &self,
        kind: OpKind,
        items: &[T],
        key_of: impl Fn(&T) -> &str,
        write: impl Fn(&[T]) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let key = items.first().map_or("", &key_of).to_owned();
        let (index, fault, delay) = self.handle.begin(kind, &key, items.len());
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let ordered: Vec<T> =
            self.handle.order(items.len()).into_iter().filter_map(|i| items.get(i).cloned()).collect();
        match fault {
            None => write(&ordered),
            Some(Fault::Fail) => Err(injected(index, kind, &key, Fault::Fail)),
            Some(Fault::Tear) => {
                let kept = self.handle.kept(ordered.len());
                write(ordered.get(..kept).unwrap_or_default())?;
                Err(injected(index, kind, &key, Fault::Tear))
            }
            Some(Fault::FailAfter) => {
                write(&ordered)?;
                Err(injected(index, kind, &key, Fault::FailAfter))
            }
        }
    }
}

impl<S: Store + ?Sized> Store for FaultStore<S> {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run(OpKind::Get, key, || self.inner.get(key))
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        self.batch(OpKind::PutBatch, entries, |(k, _)| k.as_str(), |part| self.inner.put_batch(part))
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        self.batch(OpKind::DeleteBatch, keys, String::as_str, |part| self.inner.delete_batch(part))
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.run(OpKind::List, prefix, || self.inner.list(prefix))
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.run(OpKind::CompareAndSet, key, || self.inner.compare_and_set(key, expected, new))
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> StoreResult<bool> {
        self.run(OpKind::PutIfAbsent, key, || self.inner.put_if_absent(key, bytes))
    }

    fn get_range(&self, key: &str, range: ByteRange) -> StoreResult<Option<Vec<u8>>> {
        self.run(OpKind::Get, key, || self.inner.get_range(key, range))
    }

    fn get_ranges(&self, reads: &[(String, ByteRange)]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let key = reads.first().map_or("", |(k, _)| k.as_str());
        self.run(OpKind::GetMany, key, || self.inner.get_ranges(reads))
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let key = keys.first().map_or("", String::as_str);
        self.run(OpKind::GetMany, key, || self.inner.get_many(keys))
    }

    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let key = keys.first().map_or("", String::as_str);
        self.run(OpKind::StoredSizes, key, || self.inner.stored_sizes(keys))
    }

    fn prefers_batched_reads(&self) -> bool {
        self.inner.prefers_batched_reads()
    }

    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.run(OpKind::LogAppend, log, || self.inner.log_append(log, seq, record))
    }

    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), AppendFailure> {
        let (index, fault, delay) = self.handle.begin(OpKind::LogAppend, log, records.len());
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let fail = |appended: usize, fault: Fault| AppendFailure {
            appended,
            error: injected(index, OpKind::LogAppend, log, fault),
        };
        match fault {
            None => self.inner.log_append_many(log, records),
            Some(Fault::Fail) => Err(fail(0, Fault::Fail)),
            Some(Fault::Tear) => {
                // A log is append-only: what survives a torn group append is a prefix.
                let kept = self.handle.kept(records.len());
                self.inner.log_append_many(log, records.get(..kept).unwrap_or_default())?;
                Err(fail(kept, Fault::Tear))
            }
            Some(Fault::FailAfter) => {
                self.inner.log_append_many(log, records)?;
                Err(fail(records.len(), Fault::FailAfter))
            }
        }
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.run(OpKind::LogRead, log, || self.inner.log_read(log, after))
    }

    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.run(OpKind::LogDiscard, log, || self.inner.log_discard(log, through))
    }

    fn log_discard_all(&self, log: &str, through: u64) -> StoreResult<()> {
        self.run(OpKind::LogDiscard, log, || self.inner.log_discard_all(log, through))
    }

    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.run(OpKind::LogDiscard, log, || self.inner.log_delete(log))
    }

    fn log_is_current(&self, log: &str, last_seq: u64) -> StoreResult<bool> {
        self.run(OpKind::LogRead, log, || self.inner.log_is_current(log, last_seq))
    }

    fn sweep_temporaries(&self) -> StoreResult<Vec<String>> {
        self.run(OpKind::Sweep, "", || self.inner.sweep_temporaries())
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.run(OpKind::LockWriter, "", || self.inner.lock_writer())
    }

    fn destroy(&self) -> StoreResult<()> {
        self.inner.destroy()
    }
}

/// What survives of the entries an operation had written when the power went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survivors {
    /// Nothing of the operation in progress.
    None,
    /// A seeded subset of its entries (a prefix of a log append's records), as a disk that
    /// wrote some of them back before the cut might keep.
    Some,
}

/// The durable contents of a [`PowerLossStore`].
#[derive(Clone, Default)]
struct Disk {
    entries: BTreeMap<String, Vec<u8>>,
    logs: BTreeMap<String, BTreeMap<u64, Vec<u8>>>,
    floors: BTreeMap<String, u64>,
}

struct Power {
    disk: Disk,
    /// Entry steps taken so far (each written entry is one step, each other call one).
    steps: u64,
    /// The power goes out just before this step.
    cut_at: Option<u64>,
    off: bool,
    survivors: Survivors,
    rng: SplitMix64,
}

#[derive(Default)]
struct WriterLock {
    locked: Mutex<bool>,
    released: Condvar,
}

struct PowerGuard(Arc<WriterLock>);

impl Drop for PowerGuard {
    fn drop(&mut self) {
        *self.0.locked.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.released.notify_one();
    }
}

/// An in-memory store that models power loss: every operation is durable when it returns
/// (the [`Store`] contract), and a cut planned at step `n` (each entry a write touches is a
/// step, each other call one step) stops the operation in progress there. Of that operation,
/// the entries before the cut survive as [`Survivors`] says; everything acknowledged before
/// it survives; every later call fails, as in a machine without power. [`PowerLossStore::
/// restart`] then gives a store holding what survived, as a new process would find it: a
/// fresh handle (so a fresh connection), a fresh writer lock.
///
/// Cuts between two operations (after the log append of a commit and before its head
/// compare-and-set, after a flush's nodes and before its head) are the cuts before the first
/// step of an operation. The log is kept per record (as the memory backend does), with the
/// fencing of the contract: an append at or below the last record or the floor conflicts.
pub struct PowerLossStore {
    power: Arc<Mutex<Power>>,
    writer: Arc<WriterLock>,
}

impl PowerLossStore {
    /// An empty store; random choices of surviving entries come from `seed`.
    pub fn new(seed: u64) -> Self {
        let power = Power {
            disk: Disk::default(),
            steps: 0,
            cut_at: None,
            off: false,
            survivors: Survivors::None,
            rng: SplitMix64::new(seed),
        };
        PowerLossStore { power: Arc::new(Mutex::new(power)), writer: Arc::default() }
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.power.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans the power cut just before step `step` (counted from the store's creation, see
    /// [`PowerLossStore::steps`]); `survivors` says what the operation in progress keeps.
    pub fn cut_at(&self, step: u64, survivors: Survivors) {
        let mut power = self.power();
        power.cut_at = Some(step);
        power.survivors = survivors;
    }

    /// Another handle on the same data, power and writer lock (as a second connection of the
    /// same machine would have).
    pub fn handle(&self) -> PowerLossStore {
        PowerLossStore { power: self.power.clone(), writer: self.writer.clone() }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.power().steps
    }

    /// Whether the power went out.
    pub fn is_off(&self) -> bool {
        self.power().off
    }

    /// A new store with exactly what survived, power on, no cut planned, steps from 0.
    pub fn restart(&self, seed: u64) -> PowerLossStore {
        let disk = self.power().disk.clone();
        let store = PowerLossStore::new(seed);
        store.power().disk = disk;
        store
    }

    /// Runs one operation of `entries` steps: `apply(n)` applies its first `n` entries to the
    /// disk. Returns the error naming `key` when the power is (or goes) out.
    fn step<T>(
        &self,
        key: &str,
        entries: usize,
        prefix_only: bool,
        apply: impl FnOnce(&mut Disk, &[usize]) -> T,
    ) -> StoreResult<T> {
        let mut power = self.power();
        let off = |key: &str| StoreError::Backend {
            backend: "power-loss",
            key: key.to_owned(),
            reason: "the power is off (a simulated power loss)".into(),
        };
        if power.off {
            return Err(off(key));
        }
        let steps = u64::try_from(entries.max(1)).unwrap_or(u64::MAX);
        let start = power.steps;
        power.steps += steps;
        match power.cut_at {
            Some(cut) if cut >= start && cut < start + steps => {
                power.off = true;
                let written = usize::try_from(cut - start).unwrap_or(0).min(entries);
                let kept: Vec<usize> = match power.survivors {
                    Survivors::None => Vec::new(),
                    Survivors::Some if prefix_only => {
                        let n = usize::try_from(power.rng.below(u64::try_from(written + 1).unwrap_or(1))).unwrap_or(0);
                        (0..n).collect()
                    }
                    Survivors::Some => (0..written).filter(|_| power.rng.chance(0.5)).collect(),
                };
                apply(&mut power.disk, &kept);
                Err(off(key))
            }
            _ => {
                let all: Vec<usize> = (0..entries).collect();
                Ok(apply(&mut power.disk, &all))
            }
        }
    }
}

impl Store for PowerLossStore {
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.step(key, 1, false, |disk, _| disk.entries.get(key).cloned())
    }

    fn stored_sizes(&self, keys: &[String]) -> StoreResult<Vec<Option<u64>>> {
        let key = keys.first().map_or("", String::as_str);
        self.step(key, 1, false, |disk, _| {
            keys.iter().map(|k| disk.entries.get(k).map(|v| u64::try_from(v.len()).unwrap_or(u64::MAX))).collect()
        })
    }

    fn put_batch(&self, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
        let key = entries.first().map_or("", |(k, _)| k.as_str());
        self.step(key, entries.len(), false, |disk, kept| {
            for (k, v) in kept.iter().filter_map(|i| entries.get(*i)) {
                disk.entries.insert(k.clone(), v.clone());
            }
        })
    }

    fn delete_batch(&self, keys: &[String]) -> StoreResult<()> {
        let key = keys.first().map_or("", String::as_str);
        self.step(key, keys.len(), false, |disk, kept| {
            for k in kept.iter().filter_map(|i| keys.get(*i)) {
                disk.entries.remove(k);
            }
        })
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.step(prefix, 1, false, |disk, _| {
            disk.entries
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect()
        })
    }

    fn compare_and_set(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        self.step(key, 1, false, |disk, kept| {
            if kept.is_empty() || disk.entries.get(key).map(Vec::as_slice) != expected {
                return false;
            }
            disk.entries.insert(key.to_owned(), new.to_vec());
            true
        })
    }

    fn log_append(&self, log: &str, seq: u64, record: &[u8]) -> StoreResult<()> {
        self.log_append_many(log, &[(seq, record)]).map_err(|failure| failure.error)
    }

    fn log_append_many(&self, log: &str, records: &[(u64, &[u8])]) -> Result<(), AppendFailure> {
        let result = self.step(log, records.len(), true, |disk, kept| {
            let floor = disk.floors.get(log).copied().unwrap_or(0);
            let entries = disk.logs.entry(log.to_owned()).or_default();
            for (appended, (seq, record)) in kept.iter().filter_map(|i| records.get(*i)).enumerate() {
                let last = entries.last_key_value().map_or(0, |(s, _)| *s);
                if *seq <= last.max(floor) {
                    return Err(AppendFailure {
                        appended,
                        error: StoreError::Conflict {
                            key: super::log_key(log, *seq),
                            reason: format!("log {log} already reached record {}", last.max(floor)),
                        },
                    });
                }
                entries.insert(*seq, record.to_vec());
            }
            Ok(())
        });
        match result {
            Ok(appended) => appended,
            Err(error) => Err(AppendFailure { appended: 0, error }),
        }
    }

    fn log_read(&self, log: &str, after: u64) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.step(log, 1, false, |disk, _| {
            let floor = disk.floors.get(log).copied().unwrap_or(0);
            disk.logs
                .get(log)
                .map(|records| {
                    records.range(after.max(floor).saturating_add(1)..).map(|(s, r)| (*s, r.clone())).collect()
                })
                .unwrap_or_default()
        })
    }

    fn log_discard(&self, log: &str, through: u64) -> StoreResult<()> {
        self.step(log, 1, false, |disk, kept| {
            if kept.is_empty() {
                return;
            }
            let floor = disk.floors.entry(log.to_owned()).or_insert(0);
            *floor = (*floor).max(through);
            if let Some(records) = disk.logs.get_mut(log) {
                *records = records.split_off(&through.saturating_add(1));
            }
        })
    }

    fn log_delete(&self, log: &str) -> StoreResult<()> {
        self.log_discard(log, u64::MAX)
    }

    fn lock_writer(&self) -> StoreResult<WriterGuard> {
        self.step("LOCK", 1, false, |_, _| ())?;
        let mut locked = self.writer.locked.lock().unwrap_or_else(PoisonError::into_inner);
        while *locked {
            locked = self.writer.released.wait(locked).unwrap_or_else(PoisonError::into_inner);
        }
        *locked = true;
        Ok(WriterGuard::new(Box::new(PowerGuard(self.writer.clone()))))
    }

    fn destroy(&self) -> StoreResult<()> {
        self.power().disk = Disk::default();
        Ok(())
    }
}

/// The keys a [`PowerLossStore`] holds now, for tests that compare stores.
impl PowerLossStore {
    /// Every key (not the log), sorted.
    pub fn keys(&self) -> BTreeSet<String> {
        self.power().disk.entries.keys().cloned().collect()
    }
}
