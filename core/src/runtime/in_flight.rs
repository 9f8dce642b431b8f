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

    /// Stores a record sent with [`next_token`](InFlight::next_token) and returns that token.
    pub fn insert(&mut self, record: SourceRecord, handle: Option<Submitted>) -> u64 {
        let token = self.next_token();
        self.entries.push_back(Some((record, handle)));
        self.outstanding += 1;
        token
    }

    /// Removes and returns the record sent with `token`; `None` if it was already taken.
    pub fn take(&mut self, token: u64) -> Option<(SourceRecord, Option<Submitted>)> {
        let index = usize::try_from(token.checked_sub(self.first_token)?).ok()?;
        let entry = self.entries.get_mut(index)?.take()?;
        self.outstanding -= 1;
        while matches!(self.entries.front(), Some(None)) {
            self.entries.pop_front();
            self.first_token += 1;
        }
        Some(entry)
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
                in_flight.insert(
                    SourceRecord::new(p.clone(), o, "t", Data::NULL),
                    Some(handle),
                )
            })
            .collect();
        assert_eq!(tokens, [0, 1, 2, 3]);
        assert!(in_flight.take(2).is_some());
        assert!(in_flight.take(2).is_none());
        assert!(in_flight.take(0).is_some());
        assert_eq!(in_flight.len(), 2);
        assert!(in_flight.take(1).is_some());
        assert!(in_flight.take(3).is_some());
        assert!(in_flight.is_empty());
        assert!(in_flight.take(9).is_none());
    }
}
