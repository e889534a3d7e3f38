//! One cancellation token for the whole process, cancelled by SIGINT or
//! SIGTERM. Every long-running task takes a child of it.

use tokio_util::sync::CancellationToken;

/// A token that is cancelled when the process is asked to stop.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop signal received, shutting down");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// A named long-running task of a process.
pub type Task = (&'static str, tokio::task::JoinHandle<anyhow::Result<()>>);

/// Runs a process's tasks until the first one ends (normally on `shutdown`,
/// or because it failed), then stops the others, waits for them, and
/// reports how each ended. Fails if any task failed.
pub async fn supervise(shutdown: CancellationToken, tasks: Vec<Task>) -> anyhow::Result<()> {
    let (names, handles): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
    let mut failed = None;
    let (first, index, rest) = futures::future::select_all(handles).await;
    shutdown.cancel();
    let mut ended = vec![(names[index], first)];
    let rest_names = names.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, name)| *name);
    for (name, result) in rest_names.zip(futures::future::join_all(rest).await) {
        ended.push((name, result));
    }
    for (name, result) in ended {
        match result {
            Ok(Ok(())) => tracing::info!(task = name, "stopped"),
            Ok(Err(error)) => {
                tracing::error!(task = name, error = format!("{error:#}"), "failed");
                failed.get_or_insert(error.context(format!("{name} failed")));
            }
            Err(error) => {
                tracing::error!(task = name, %error, "panicked");
                failed.get_or_insert(anyhow::anyhow!("{name} panicked: {error}"));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}
