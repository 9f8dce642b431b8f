//! Whether the producer reports its records in the order they were sent: an acknowledgement of a record
//! sent after one still unreported is out of order, the case a source's offset tracking must get right.

use std::collections::VecDeque;

/// Records by their place in the send order, from the oldest unreported one (`first`: so the front of
/// `reported` is always false).
#[derive(Debug, Default)]
pub struct AckOrder {
    first: u64,
    reported: VecDeque<bool>,
}

impl AckOrder {
    /// Records the report of the record sent `index`-th; true if a record sent before it is still
    /// unreported.
    pub fn report(&mut self, index: u64) -> bool {
        let Some(offset) = index
            .checked_sub(self.first)
            .and_then(|o| usize::try_from(o).ok())
        else {
            return false;
        };
        if self.reported.len() <= offset {
            self.reported.resize(offset + 1, false);
        }
        self.reported[offset] = true;
        let early = offset > 0;
        while self.reported.front() == Some(&true) {
            self.reported.pop_front();
            self.first += 1;
        }
        early
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_overtaking_an_unreported_record_is_out_of_order() {
        let mut order = AckOrder::default();
        assert!(!order.report(0));
        assert!(order.report(2), "record 1 is unreported");
        assert!(!order.report(1));
        assert!(!order.report(3));
        assert!(!order.report(3), "reported twice");
    }
}
