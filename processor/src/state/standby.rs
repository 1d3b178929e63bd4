//! A standby: an instance keeps its local copy of the partitions other instances
//! own caught up with their changelog, as Kafka Streams' standby replicas do, so
//! that a takeover (the owner killed, a rebalance) restores only the changelog's
//! tail instead of the whole partition before deciding its first record.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use runtime::kafka::Rebalances;
use runtime::shutdown::Shutdown;

use super::KeyedState;

/// Every `every`, follows each partition this instance does not decide now (by the
/// group's `rebalances`: a partition caught up since the last rebalance is its
/// own). Ends with `shutdown`, or when dropped with the pipeline it serves.
pub async fn run(
    state: Arc<KeyedState>,
    rebalances: Rebalances,
    every: Duration,
    shutdown: Shutdown,
) {
    let mut stop = shutdown.clone();
    // The last failure, said once per cause, not every interval.
    let mut failure: Option<String> = None;
    // The partition count, asked of the broker again only after a rebalance (a
    // topic that gains partitions makes the group rebalance).
    let mut count: Option<(u64, i32)> = None;
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            () = tokio::time::sleep(every) => {}
        }
        let outcome = follow_all(&state, &rebalances, &mut count).await;
        match outcome {
            Ok(followed) => {
                if failure.take().is_some() {
                    tracing::info!(partitions = ?followed, "standby following again");
                }
            }
            Err(error) => {
                let said = error.to_string();
                if failure.as_deref() != Some(said.as_str()) {
                    tracing::error!(error = %said, "standby: a partition's state could not be followed; tried again every interval");
                    failure = Some(said);
                }
            }
        }
    }
}

/// One round: the partitions followed.
async fn follow_all(
    state: &KeyedState,
    rebalances: &Rebalances,
    count: &mut Option<(u64, i32)>,
) -> Result<BTreeSet<i32>, super::StateError> {
    let rebalanced = rebalances.count();
    let partitions = match *count {
        Some((at, partitions)) if at == rebalanced => partitions,
        _ => {
            let partitions = state.partitions().await?;
            *count = Some((rebalanced, partitions));
            partitions
        }
    };
    let mut followed = BTreeSet::new();
    for partition in 0..partitions {
        let owned = |p: i32| state.is_ready(p, rebalances.count());
        if owned(partition) {
            continue;
        }
        state.follow(partition, owned).await?;
        followed.insert(partition);
    }
    Ok(followed)
}
