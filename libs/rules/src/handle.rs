//! Hot reloading: a swappable handle on the current rules and the task that
//! reloads it when the files change or the process gets SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Rules, RulesErrors};

/// Quiet time after the last file event before reloading, so an editor's
/// save (write, rename, chmod) or a deploy touching three files reloads once.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The current rules of a process, swapped whole on reload; readers never
/// block and never see a half-loaded set.
#[derive(Debug)]
pub struct RulesHandle {
    dir: PathBuf,
    current: ArcSwap<Rules>,
}

impl RulesHandle {
    /// Loads the rules in `dir`.
    ///
    /// # Errors
    /// Every problem in the files, as [`Rules::load`].
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, RulesErrors> {
        let dir = dir.into();
        let rules = Rules::load(&dir)?;
        Ok(Self::new(dir, rules))
    }

    /// A handle serving `rules`, reloading from `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, rules: Rules) -> Self {
        Self {
            dir: dir.into(),
            current: ArcSwap::from_pointee(rules),
        }
    }

    /// The directory reloads read.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rules in force; hold the `Arc` for the length of one decision so
    /// it sees one consistent set.
    #[must_use]
    pub fn current(&self) -> Arc<Rules> {
        self.current.load_full()
    }

    /// Reloads from the directory. Invalid rules are logged and rejected,
    /// and the last good rules stay in force.
    ///
    /// # Errors
    /// Every problem in the new files; the rules in force are unchanged.
    pub fn reload(&self) -> Result<(), RulesErrors> {
        match Rules::load(&self.dir) {
            Ok(rules) => {
                if *self.current.load_full() == rules {
                    tracing::debug!(dir = %self.dir.display(), "rules unchanged");
                } else {
                    self.current.store(Arc::new(rules));
                    tracing::info!(dir = %self.dir.display(), "rules reloaded");
                }
                Ok(())
            }
            Err(errors) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    problems = errors.len(),
                    errors = %errors,
                    "rules reload rejected, keeping the last good rules"
                );
                Err(errors)
            }
        }
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file watcher could not be set up on the directory.
    #[error("cannot watch rules directory {dir}")]
    Notify {
        /// The directory.
        dir: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// The SIGHUP handler could not be installed.
    #[error("cannot listen for SIGHUP")]
    Signal(#[source] std::io::Error),
}

/// Starts a task that reloads `handle` when a file in its directory changes
/// (after [`DEBOUNCE`] of quiet) or the process receives SIGHUP, until
/// `cancel` fires. Must be called from within a Tokio runtime.
///
/// # Errors
/// When the directory cannot be watched or SIGHUP cannot be handled.
pub fn spawn_watcher(
    handle: Arc<RulesHandle>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, WatchError> {
    // One pending signal is enough: a reload reads every file.
    let (tx, mut changed) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reading the files (our own reload) must not trigger a reload.
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = tx.try_send(());
            }
            Err(e) => tracing::warn!(error = %e, "rules watcher error"),
        }
    })
    .map_err(|source| WatchError::Notify {
        dir: handle.dir().to_owned(),
        source,
    })?;
    watcher
        .watch(handle.dir(), RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Notify {
            dir: handle.dir().to_owned(),
            source,
        })?;
    let mut hangup = signal(SignalKind::hangup()).map_err(WatchError::Signal)?;

    Ok(tokio::spawn(async move {
        // Dropping the watcher stops it, so the task owns it.
        let _watcher = watcher;
        tracing::info!(dir = %handle.dir().display(), "watching rules");
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(()) = changed.recv() => {
                    if !quiet_for(DEBOUNCE, &mut changed, &cancel).await {
                        break;
                    }
                    tracing::info!(dir = %handle.dir().display(), "rules files changed, reloading");
                }
                Some(()) = hangup.recv() => {
                    tracing::info!(dir = %handle.dir().display(), "SIGHUP, reloading rules");
                }
            }
            let h = Arc::clone(&handle);
            // Reading files blocks; the outcome is logged by reload itself.
            let _ = tokio::task::spawn_blocking(move || h.reload()).await;
        }
        tracing::debug!("rules watcher stopped");
    }))
}

/// Waits until no change arrives for `quiet`; `false` if cancelled first.
async fn quiet_for(
    quiet: Duration,
    changed: &mut mpsc::Receiver<()>,
    cancel: &CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(quiet) => return true,
            Some(()) = changed.recv() => {}
        }
    }
}
