//! One value per partition of an ordered list of topics, in one flat vector.
//!
//! The extraction keeps a few numbers per partition for the whole run (earliest and latest
//! offsets, size on disk) because records of later phases need them (a group's lag, a topic's
//! size). Keyed by `(String, i32)` in hash maps that cost about 80 bytes and an allocation per
//! partition; here a partition costs `size_of::<T>()` and a topic one `usize`, with no
//! allocation per entry (issue 12: memory must not grow with the cluster beyond a compact index).
//!
//! Topics are addressed by their index in the list the table was built from (the extraction's
//! topics, sorted by name), partitions by their id; a partition id outside `0..count` has no
//! slot.

/// A `T` per partition `0..count` of each topic, topics in the order given to [`Self::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable<T> {
    /// `starts[t]`: where topic `t`'s partition 0 is in `values`; one more entry at the end.
    starts: Vec<usize>,
    values: Vec<T>,
}

impl<T: Copy> Default for PartitionTable<T> {
    fn default() -> Self {
        Self {
            starts: vec![0],
            values: Vec::new(),
        }
    }
}

impl<T: Copy> PartitionTable<T> {
    /// A table for topics with these partition counts (a negative count is 0), every value `fill`.
    pub fn new(counts: impl IntoIterator<Item = i32>, fill: T) -> Self {
        let mut starts = vec![0];
        let mut total = 0usize;
        for count in counts {
            total += usize::try_from(count).unwrap_or(0);
            starts.push(total);
        }
        Self {
            starts,
            values: vec![fill; total],
        }
    }

    /// Number of topics.
    pub fn topics(&self) -> usize {
        self.starts.len() - 1
    }

    fn slot(&self, topic: usize, partition: i32) -> Option<usize> {
        let start = *self.starts.get(topic)?;
        let end = *self.starts.get(topic + 1)?;
        let slot = start.checked_add(usize::try_from(partition).ok()?)?;
        (slot < end).then_some(slot)
    }

    /// The value of `partition` of topic number `topic`; `None` when there is no such slot.
    pub fn get(&self, topic: usize, partition: i32) -> Option<T> {
        self.slot(topic, partition).map(|s| self.values[s])
    }

    pub fn get_mut(&mut self, topic: usize, partition: i32) -> Option<&mut T> {
        self.slot(topic, partition).map(|s| &mut self.values[s])
    }

    /// Every value, topic by topic.
    pub fn values(&self) -> &[T] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_topic_order_and_refuse_what_is_outside() {
        let mut t = PartitionTable::new([2, 0, 3, -1], None::<i64>);
        assert_eq!(t.topics(), 4);
        assert_eq!(t.values().len(), 5);
        *t.get_mut(0, 1).unwrap() = Some(10);
        *t.get_mut(2, 0).unwrap() = Some(20);
        *t.get_mut(2, 2).unwrap() = Some(22);
        assert_eq!(t.get(0, 1), Some(Some(10)));
        assert_eq!(t.get(0, 0), Some(None));
        assert_eq!(t.get(2, 2), Some(Some(22)));
        // Partition ids past the count, negative ids, empty topics and unknown topics have no slot.
        for (topic, partition) in [(0, 2), (0, -1), (1, 0), (3, 0), (4, 0), (usize::MAX, 0)] {
            assert_eq!(t.get(topic, partition), None, "{topic}/{partition}");
            assert!(t.get_mut(topic, partition).is_none());
        }
        assert_eq!(t.get(2, i32::MAX), None);
        assert_eq!(PartitionTable::<u8>::default().topics(), 0);
    }
}
