//! The log writer thread: appends log records so that the sync of one record overlaps the
//! in-memory index update of the same transaction.

use super::*;

/// A thread that appends log records, so that the sync of one record overlaps the in-memory
/// index update of the same transaction.
pub(super) struct LogWriter {
    pub(super) requests: mpsc::Sender<LogRequest>,
}

pub(super) struct LogRequest {
    pub(super) seq: u64,
    pub(super) record: Arc<[u8]>,
    pub(super) reply: mpsc::SyncSender<Result<()>>,
}

/// An append under way; [`PendingAppend::wait`] returns once it is durable.
pub(super) struct PendingAppend(mpsc::Receiver<Result<()>>);

impl PendingAppend {
    pub(super) fn wait(self) -> Result<()> {
        // The sync is under way and ends within a disk's latency: polling for it saves the
        // wake-up of a sleeping thread (tens of microseconds on a virtual machine).
        recv_polling(&self.0, REPLY_POLL).map_err(|_| Error::Internal("the log writer thread stopped".into()))?
    }
}

/// How long a committer polls for its log append to finish before it sleeps.
pub(super) const REPLY_POLL: Duration = Duration::from_millis(2);

/// How long the log writer polls for the next record after an append before it sleeps, when
/// records have been arriving that fast: a committer that transacts in a loop then hands
/// over its record without waking a thread.
pub(super) const REQUEST_POLL: Duration = Duration::from_micros(250);

/// Receives from `rx`, first polling for up to `poll` and then sleeping.
pub(super) fn recv_polling<T>(rx: &mpsc::Receiver<T>, poll: Duration) -> std::result::Result<T, mpsc::RecvError> {
    if !poll.is_zero() {
        let start = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(v) => return Ok(v),
                Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
                Err(mpsc::TryRecvError::Empty) => {
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                    if start.elapsed() >= poll {
                        break;
                    }
                }
            }
        }
    }
    rx.recv()
}

impl LogWriter {
    pub(super) fn spawn(store: Arc<dyn Store>, log: String) -> Result<LogWriter> {
        let (requests, inbox) = mpsc::channel::<LogRequest>();
        std::thread::Builder::new()
            .name(format!("datahike-log-{log}"))
            .spawn(move || {
                // Polls for the next record only while records keep coming within the poll
                // window; a connection that commits now and then costs no polling.
                let mut poll = Duration::ZERO;
                // Ends when the connection drops its sender.
                loop {
                    let idle = Instant::now();
                    let Ok(req) = recv_polling(&inbox, poll) else { break };
                    poll = if idle.elapsed() < REQUEST_POLL { REQUEST_POLL } else { Duration::ZERO };
                    let result = store.log_append(&log, req.seq, &req.record).map_err(Error::from);
                    let _ = req.reply.send(result);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the log writer thread: {e}")))?;
        Ok(LogWriter { requests })
    }

    pub(super) fn append(&self, seq: u64, record: Arc<[u8]>) -> Result<PendingAppend> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(LogRequest { seq, record, reply })
            .map_err(|_| Error::Internal("the log writer thread stopped".into()))?;
        Ok(PendingAppend(answer))
    }
}

impl Durable {
    pub(super) fn log_writer(&mut self) -> Result<&LogWriter> {
        let writer = match self.log_writer.take() {
            Some(w) => w,
            None => LogWriter::spawn(self.store.clone(), self.log.clone())?,
        };
        Ok(self.log_writer.insert(writer))
    }
}
