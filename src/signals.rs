//! The process's shutdown signals: SIGINT, SIGTERM or SIGHUP starts a clean stop; a second one during the
//! stop ends the process at once, as a user pressing Ctrl-C twice expects.

/// The exit status after a second signal cut a stop short (128 + SIGINT, as a shell reports an
/// interrupted command).
pub const INTERRUPTED_EXIT: i32 = 130;

/// Completes on the first SIGINT, SIGTERM or SIGHUP; from then on, another one exits the process at once
/// with [`INTERRUPTED_EXIT`]. The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives while the worker is still starting (its REST API already
/// answering) starts a clean stop instead of killing the process.
pub fn terminated() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = unix::Signals::new();
    async move {
        #[cfg(unix)]
        {
            match signals {
                Ok(mut signals) => {
                    let first = signals.next().await;
                    tracing::info!(
                        signal = first,
                        "shutdown signal received: stopping cleanly (send another to exit at once)"
                    );
                    tokio::spawn(async move {
                        let second = signals.next().await;
                        tracing::warn!(
                            signal = second,
                            "second shutdown signal: exiting at once, without finishing the stop"
                        );
                        std::process::exit(INTERRUPTED_EXIT);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM and SIGHUP; stopping on Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    tracing::info!("shutdown signal received");
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown signal received");
        }
    }
}

#[cfg(unix)]
mod unix {
    use tokio::signal::unix::{signal, Signal, SignalKind};

    /// The signals that stop the process, listened to for its whole life (once a handler is installed,
    /// the signal no longer kills the process by default).
    pub struct Signals {
        interrupt: Signal,
        terminate: Signal,
        hangup: Signal,
    }

    impl Signals {
        pub fn new() -> std::io::Result<Signals> {
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }

        /// The next stop signal's name.
        pub async fn next(&mut self) -> &'static str {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.hangup.recv() => "SIGHUP",
            }
        }
    }
}
