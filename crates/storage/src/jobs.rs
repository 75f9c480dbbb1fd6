//! Handing a job to a store's writer and awaiting its answer, for the stores whose
//! writes go through one writer (redb's thread, PostgreSQL's task). A writer that is
//! gone (the store closed) is 503, like a store that cannot serve.

use ripplekv_core::Error;
use tokio::sync::oneshot;

/// Where a writer sends a job's outcome.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// Queues the job `make` builds around its reply channel, waiting only for room in the
/// queue; returns where the outcome will arrive.
pub(crate) async fn queue<J, T>(
    jobs: &flume::Sender<J>,
    make: impl FnOnce(Reply<T>) -> J,
) -> Result<oneshot::Receiver<Result<T, Error>>, Error> {
    let (reply, answer) = oneshot::channel();
    jobs.send_async(make(reply))
        .await
        .map_err(|_| Error::Unavailable)?;
    Ok(answer)
}

/// The outcome of a queued job.
pub(crate) async fn answer<T>(answer: oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
    answer.await.map_err(|_| Error::Unavailable)?
}
