//! `/readyz`: ready when the store answered its last ping.

use std::sync::{Arc, Weak};
use std::time::Duration;

use fleuve_projections::Store;
use fleuve_service::ReadyFlag;

const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts pinging `store` every second into a readiness flag; the task stops once the flag
/// (held by the router) is dropped.
pub(crate) fn start(store: Arc<dyn Store>) -> Arc<ReadyFlag> {
    let flag = Arc::new(ReadyFlag::not_ready(
        "the store has not answered a ping yet",
    ));
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(ping_loop(store, Arc::downgrade(&flag)));
        }
        Err(_) => flag.set(Err("no Tokio runtime to ping the store from".into())),
    }
    flag
}

async fn ping_loop(store: Arc<dyn Store>, flag: Weak<ReadyFlag>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("store ping failed: {e}")),
            Err(_) => Err(format!(
                "store did not answer a ping within {} s",
                PING_TIMEOUT.as_secs()
            )),
        };
        let Some(flag) = flag.upgrade() else {
            return; // The router is gone.
        };
        if let Err(reason) = &result {
            tracing::warn!(%reason, "query API not ready");
        }
        flag.set(result);
    }
}
