//! The signals that end a run early: Ctrl-C's SIGINT, the SIGTERM a CI runner or `timeout`
//! sends, a closed terminal's SIGHUP. Each ends a run the same way (finished work kept,
//! the rest torn down) with the exit status shells report for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
    Hangup,
}

impl StopSignal {
    /// 128 plus the signal's number: 130, 143, 129.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
            StopSignal::Hangup => 129,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Hangup => "SIGHUP",
        }
    }
}

/// Whether a stop signal arrived, and which. Listening starts when this is made; later
/// signals are absorbed while the run tears down (SIGKILL still ends it at once).
#[derive(Debug, Clone)]
pub struct Stop {
    signal: watch::Receiver<Option<StopSignal>>,
    flag: Arc<AtomicBool>,
}

impl Stop {
    /// Takes over the three signals for the rest of the process. Needs a Tokio runtime.
    pub fn listen() -> std::io::Result<Stop> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let (tx, rx) = watch::channel(None);
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        tokio::spawn(async move {
            let first = tokio::select! {
                _ = interrupt.recv() => StopSignal::Interrupt,
                _ = terminate.recv() => StopSignal::Terminate,
                _ = hangup.recv() => StopSignal::Hangup,
            };
            set.store(true, Ordering::SeqCst);
            let _ = tx.send(Some(first));
            // The handlers stay installed when the streams go: further signals are ignored.
        });
        Ok(Stop { signal: rx, flag })
    }

    /// Resolves with the first stop signal.
    pub async fn requested(&self) -> StopSignal {
        let mut rx = self.signal.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(signal) => signal.expect("waited for Some"),
            // The listener is gone without a signal: nothing will stop this run.
            Err(_) => std::future::pending().await,
        }
    }

    /// The signal that arrived, if one did.
    pub fn received(&self) -> Option<StopSignal> {
        *self.signal.borrow()
    }

    /// Set once a signal arrived, for blocking work (a kernel build) to poll.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}
