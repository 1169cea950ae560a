//! Tables the commands print for people (JSON is printed with serde).

/// Incidents as a table.
pub fn print_incidents(items: &[awfdrs_store::Incident]) {
    println!(
        "{:<36}  {:<10}  {:<16}  {:<20}  {:<10}  {:>6}  LAST SEEN",
        "ID", "STATUS", "WORKFLOW", "ERROR CODE", "VENDOR", "EVENTS"
    );
    for i in items {
        println!(
            "{:<36}  {:<10}  {:<16}  {:<20}  {:<10}  {:>6}  {}",
            i.id,
            i.status,
            i.workflow_id,
            i.error_code,
            i.vendor.as_deref().unwrap_or("-"),
            i.event_count,
            i.last_seen.format("%Y-%m-%d %H:%M:%S")
        );
    }
}
