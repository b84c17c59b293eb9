//! Per-domain, per-day delivery counts for the web portal's domains page: delivered,
//! refused before acceptance (unknown user, full at RCPT, disabled account), and bounced
//! (refused after the data: full at end of data). Only local domains are counted.

use letterbox_proto::Context;
use letterbox_store::web::DeliveryOutcome;

/// Counts a recipient's outcome for its domain, today (UTC). A failure to count is
/// logged, never fatal to the delivery.
pub(super) async fn count(ctx: &Context, address: &str, outcome: DeliveryOutcome) {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return;
    };
    // Its stored form (an internationalised name as its A-label).
    let domain =
        letterbox_store::idn::a_label(domain).unwrap_or_else(|| domain.to_ascii_lowercase());
    let day = letterbox_store::web::day_of(letterbox_store::now());
    let r = ctx
        .store
        .run(move |s| {
            if s.list_domains()?.contains(&domain) {
                s.web().count_delivery(&domain, day, outcome)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::warn!("delivery count not recorded: {e}");
    }
}
