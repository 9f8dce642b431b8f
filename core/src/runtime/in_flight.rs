//! Source records handed to the producer and not yet acknowledged, found by delivery token in O(1).

use std::collections::VecDeque;

use crate::api::SourceRecord;

use super::submitted::Submitted;

/// Records by token. Tokens are handed out in sequence and acknowledgements come back roughly in order,
/// so a deque indexed from the oldest outstanding token suffices.
#[derive(Default)]
pub struct InFlight {
    first_token: u64,
    entries: VecDeque<Option<(SourceRecord, Option<Submitted>)>>,
    outstanding: usize,
}

impl InFlight {
    /// The token the next inserted record gets: send it with this token, then insert it.
    pub fn next_token(&self) -> u64 {
        self.first_token + self.entries.len() as u64
    }

    /// Stores a record sent with `token`, which [`next_token`](InFlight::next_token) gave: nothing
    /// may be inserted between the two.
    pub fn insert(&mut self, token: u64, record: SourceRecord, handle: Option<Submitted>) {
        debug_assert_eq!(token, self.next_token(), "a record inserted out of turn");
        self.entries.push_back(Some((record, handle)));
        self.outstanding += 1;
    }

    /// Removes and returns the record sent with `token`; `None` if it was already taken.
    pub fn take(&mut self, token: u64) -> Option<(SourceRecord, Option<Submitted>)> {
        let index = usize::try_from(token.checked_sub(self.first_token)?).ok()?;
        let entry = self.entries.get_mut(index)?.take()?;
        self.outstanding -= 1;
        self.drop_acknowledged_prefix();
        Some(entry)
    }

    /// Hands the record sent with `token` and its handle to `acknowledge`, then drops it; `None` if it
    /// was already acknowledged. Records stay where they are until dropped: they are large, and
    /// moving each out costs more than the bookkeeping around it.
    pub fn acknowledge<R>(
        &mut self,
        token: u64,
        acknowledge: impl FnOnce(&SourceRecord, Option<Submitted>) -> R,
    ) -> Option<R> {
        let index = usize::try_from(token.checked_sub(self.first_token)?).ok()?;
        let entry = self.entries.get_mut(index)?;
        let (record, handle) = entry.as_ref()?;
        let result = acknowledge(record, *handle);
        *entry = None;
        self.outstanding -= 1;
        self.drop_acknowledged_prefix();
        Some(result)
    }

    fn drop_acknowledged_prefix(&mut self) {
        let done = self.entries.iter().take_while(|e| e.is_none()).count();
        self.entries.drain(..done);
        self.first_token += done as u64;
    }

    /// How many records await acknowledgement.
    pub fn len(&self) -> usize {
        self.outstanding
    }

    pub fn is_empty(&self) -> bool {
        self.outstanding == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SourceMap;
    use crate::data::Data;
    use crate::runtime::submitted::SubmittedRecords;

    #[test]
    fn takes_in_any_order_once() {
        let mut submitted = SubmittedRecords::new();
        let mut in_flight = InFlight::default();
        let p = SourceMap::single("f", "x");
        let tokens: Vec<u64> = (0..4)
            .map(|i| {
                let o = SourceMap::single("position", i);
                let handle = submitted.submit(p.clone(), o.clone());
                let token = in_flight.next_token();
                in_flight.insert(
                    token,
                    SourceRecord::new(p.clone(), o, "t", Data::NULL),
                    Some(handle),
                );
                token
            })
            .collect();
        assert_eq!(tokens, [0, 1, 2, 3]);
        let position = |in_flight: &mut InFlight, token| {
            in_flight.acknowledge(token, |record: &SourceRecord, handle| {
                assert!(handle.is_some());
                record
                    .source_offset
                    .get("position")
                    .and_then(|p| p.as_u64())
            })
        };
        assert_eq!(position(&mut in_flight, 2), Some(Some(2)));
        assert_eq!(position(&mut in_flight, 2), None, "acknowledged twice");
        assert_eq!(position(&mut in_flight, 0), Some(Some(0)));
        assert_eq!(in_flight.len(), 2);
        let (taken, _) = in_flight.take(1).expect("record 1 is in flight");
        assert_eq!(taken.source_offset, SourceMap::single("position", 1));
        assert!(in_flight.take(1).is_none());
        assert_eq!(position(&mut in_flight, 3), Some(Some(3)));
        assert!(in_flight.is_empty());
        assert_eq!(position(&mut in_flight, 9), None);
        assert_eq!(in_flight.next_token(), 4);
    }
}
