//! What a source loop keeps of the records handed to the producer until Kafka acknowledges them,
//! found by delivery token in O(1).

use std::collections::VecDeque;

/// How many records may lie between the oldest one awaiting acknowledgement and the newest one sent
/// before a source loop stops polling its task. The list holds that whole span, records acknowledged
/// behind a late one included (with 64 partitions one late batch holds it open), so it is the span, not
/// the count awaiting acknowledgement, that bounds its memory. Two polls' records go on top (one batch is
/// sent while the next is polled): 12,288 plus two of FileStreamSource's 2,000 keeps a list of records
/// within 16,384 entries.
const MAX_SPAN: usize = 12_288;

/// Entries by token. Tokens are handed out in sequence and acknowledgements come back roughly in
/// order, so a deque indexed from the oldest outstanding token suffices.
pub struct InFlight<T> {
    first_token: u64,
    entries: VecDeque<Option<T>>,
    outstanding: usize,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            first_token: 0,
            entries: VecDeque::new(),
            outstanding: 0,
        }
    }
}

impl<T> InFlight<T> {
    /// The token the next inserted entry gets: send its record with this token, then insert it.
    pub fn next_token(&self) -> u64 {
        self.first_token + self.entries.len() as u64
    }

    /// Stores the entry of a record sent with `token`, which [`next_token`](InFlight::next_token)
    /// gave: nothing may be inserted between the two.
    pub fn insert(&mut self, token: u64, entry: T) {
        debug_assert_eq!(token, self.next_token(), "a record inserted out of turn");
        self.entries.push_back(Some(entry));
        self.outstanding += 1;
    }

    /// Removes and returns the entry of the record sent with `token`; `None` if it was already taken.
    pub fn take(&mut self, token: u64) -> Option<T> {
        let index = usize::try_from(token.checked_sub(self.first_token)?).ok()?;
        let entry = self.entries.get_mut(index)?.take()?;
        self.outstanding -= 1;
        self.drop_acknowledged_prefix();
        Some(entry)
    }

    fn drop_acknowledged_prefix(&mut self) {
        // Usually the oldest entry is still waiting and nothing moves.
        while let Some(None) = self.entries.front() {
            self.entries.pop_front();
            self.first_token += 1;
        }
    }

    /// How many records await acknowledgement.
    pub fn len(&self) -> usize {
        self.outstanding
    }

    /// How many records lie from the oldest awaiting acknowledgement to the newest inserted, those
    /// acknowledged in between included: what the list holds.
    fn span(&self) -> usize {
        self.entries.len()
    }

    /// Whether the loop may poll its task for more: not while the records in flight span
    /// [`MAX_SPAN`].
    pub fn has_room(&self) -> bool {
        self.span() < MAX_SPAN
    }

    pub fn is_empty(&self) -> bool {
        self.outstanding == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_in_any_order_once() {
        let mut in_flight = InFlight::default();
        let tokens: Vec<u64> = (0..4)
            .map(|i| {
                let token = in_flight.next_token();
                in_flight.insert(token, format!("record {i}"));
                token
            })
            .collect();
        assert_eq!(tokens, [0, 1, 2, 3]);
        assert_eq!(in_flight.take(2).as_deref(), Some("record 2"));
        assert_eq!(in_flight.take(2), None, "taken twice");
        assert_eq!(in_flight.take(0).as_deref(), Some("record 0"));
        assert_eq!(in_flight.len(), 2);
        assert_eq!(in_flight.span(), 3, "record 2 is held behind record 1");
        assert_eq!(in_flight.take(1).as_deref(), Some("record 1"));
        assert!(!in_flight.is_empty());
        assert_eq!(in_flight.take(3).as_deref(), Some("record 3"));
        assert!(in_flight.is_empty());
        assert_eq!(in_flight.take(9), None);
        assert_eq!(in_flight.next_token(), 4);
    }

    #[test]
    fn a_late_record_holds_the_room_for_everything_behind_it() {
        let mut in_flight = InFlight::default();
        for i in 0..MAX_SPAN {
            assert!(in_flight.has_room(), "full after {i} records");
            in_flight.insert(in_flight.next_token(), i);
        }
        assert!(!in_flight.has_room());
        // Every record but the oldest is acknowledged: one awaits, and still the span is full.
        for token in 1..MAX_SPAN as u64 {
            assert!(in_flight.take(token).is_some());
        }
        assert_eq!(in_flight.len(), 1);
        assert!(
            !in_flight.has_room(),
            "the oldest record holds the span open"
        );
        assert_eq!(in_flight.take(0), Some(0));
        assert!(in_flight.has_room());
    }
}
