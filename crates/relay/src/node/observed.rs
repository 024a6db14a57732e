//! What `/healthz` and `/metrics` read of a running node.

use super::Shared;

impl crate::metrics::Observed for Shared {
    fn metrics(&self) -> String {
        self.metrics.render(self.store.depth().unwrap_or_default())
    }

    fn health(&self) -> Result<(), String> {
        let alarms = self.alarms();
        if alarms.is_empty() {
            Ok(())
        } else {
            Err(alarms.join("; "))
        }
    }
}
