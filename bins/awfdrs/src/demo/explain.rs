//! The demo's last part: each incident it created, with the analyzer's
//! explained decision.

use std::time::{Duration, Instant};

use awfdrs_domain::DecisionV1;
use awfdrs_store::{Incident, Store};
use uuid::Uuid;

/// Prints the latest decision about each of `items` (of `tenant`), waiting
/// until `deadline` for the analyzer; returns the problems found (an
/// incident not analysed in time, a decision that does not read back).
///
/// # Errors
/// When the database cannot be read.
pub(super) async fn each(
    store: &Store,
    tenant: Uuid,
    items: &[Incident],
    deadline: Instant,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for i in items {
        let decision = loop {
            let decisions = store.decisions(Some(tenant), i.id).await?;
            if let Some(last) = decisions.into_iter().last() {
                break Some(last);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        match decision.map(serde_json::from_value::<DecisionV1>) {
            Some(Ok(d)) => {
                println!(
                    "\nwhy {} {} (awfdrs incidents explain {}):",
                    i.workflow_id, i.error_code, i.id
                );
                print!("{}", awfdrs_analysis::explain::render(&d));
            }
            Some(Err(e)) => problems.push(format!(
                "the decision about incident {} does not read back: {e}",
                i.id
            )),
            None => problems.push(format!("incident {} was not analysed in time", i.id)),
        }
    }
    Ok(problems)
}
