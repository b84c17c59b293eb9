//! A server-wide budget for message content held in memory while it is being received
//! (`[limits] max_buffered_content`): SMTP/LMTP DATA and BDAT today. Without it, every
//! connection could hold a message of the maximum size before it is even accepted (50
//! connections from one address times 50 MiB). A session reserves room as content
//! arrives, in 64 KiB units; when the budget is spent it refuses the message with a
//! temporary error, so the sender retries later, and nothing else is disturbed.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservation granularity.
const UNIT: usize = 64 * 1024;

/// The shared budget.
pub struct Budget {
    units: Arc<Semaphore>,
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        let units = usize::try_from(bytes / UNIT as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            units: Arc::new(Semaphore::new(units)),
        }
    }

    /// An empty reservation against this budget.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            units: self.units.clone(),
            held: None,
            count: 0,
        }
    }
}

/// Room reserved by one message in progress; given back when dropped.
pub struct Reservation {
    units: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    count: usize,
}

impl Reservation {
    /// Makes sure `len` octets are covered; false when the server's budget is spent (what
    /// was reserved stays reserved until the reservation is dropped).
    pub fn cover(&mut self, len: usize) -> bool {
        let need = len.div_ceil(UNIT);
        if need <= self.count {
            return true;
        }
        let Ok(more) = u32::try_from(need - self.count) else {
            return false;
        };
        match self.units.clone().try_acquire_many_owned(more) {
            Ok(p) => {
                match &mut self.held {
                    Some(h) => h.merge(p),
                    None => self.held = Some(p),
                }
                self.count = need;
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_and_return_the_budget() {
        let b = Budget::new(4 * UNIT as u64);
        let mut a = b.reserve();
        assert!(a.cover(10));
        assert!(a.cover(3 * UNIT));
        let mut c = b.reserve();
        assert!(c.cover(UNIT));
        assert!(!c.cover(UNIT + 1), "budget spent");
        drop(a);
        assert!(c.cover(4 * UNIT), "returned on drop");
    }
}
