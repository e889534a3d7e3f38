//! Where a subscriber stands in the event log: the basis of resume cursors.
//!
//! The feed pushes events out of log order (each aggregate has a lane of
//! its own, and a lane waits for the read model), so "everything up to
//! offset N" cannot describe what a subscriber has seen. A [`Position`]
//! says, per partition, the next offset read and the offsets below it that
//! are not settled yet (read but not pushed); every other offset below it is
//! settled: pushed to subscribers, or set aside because no subscription
//! shows it. A subscriber that received every event pushed before one
//! carrying a position has seen every settled event that matches it.
//!
//! A position also names its anchor, the event it was taken at, so that a
//! position from another log (a replaced broker, a recreated topic) is
//! recognised rather than trusted.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::records::READ_MODEL_TOPICS;

/// A partition of a topic the feed reads: the topic's index in
/// [`READ_MODEL_TOPICS`] and the partition's number.
pub type PartitionId = (u8, i32);

/// Where a reader stands in each partition it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    partitions: BTreeMap<PartitionId, Mark>,
    anchor: Option<Anchor>,
}

/// One partition: every offset below `next` is settled except `unsettled`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Mark {
    next: i64,
    unsettled: BTreeSet<i64>,
}

/// The event a position was taken at: its place and the start of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub partition: PartitionId,
    pub offset: i64,
    /// The first 8 bytes of the event's id.
    pub event: u64,
}

impl Anchor {
    pub fn new(partition: PartitionId, offset: i64, event_id: Uuid) -> Self {
        let bytes = event_id.as_bytes();
        Anchor { partition, offset, event: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) }
    }

    /// Whether `event_id` is the anchor's event.
    pub fn is(&self, event_id: Uuid) -> bool {
        Anchor::new(self.partition, self.offset, event_id).event == self.event
    }
}

/// The index of `topic` in [`READ_MODEL_TOPICS`].
pub fn topic_index(topic: &str) -> Option<u8> {
    READ_MODEL_TOPICS.iter().position(|known| *known == topic).map(|index| index as u8)
}

/// The name of the topic at `index` in [`READ_MODEL_TOPICS`].
pub fn topic_name(index: u8) -> &'static str {
    READ_MODEL_TOPICS[index as usize]
}

/// Why bytes are not a position.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a position this gateway wrote")]
pub struct Malformed;

/// The version byte of the encoding.
const VERSION: u8 = 1;

/// The most partitions and unsettled offsets a decoded position may name.
const MAX_PARTITIONS: u64 = 4096;
const MAX_UNSETTLED: u64 = 65_536;

impl Position {
    /// A reader starting at `next` in each of these partitions, having seen
    /// nothing (so everything before is, for it, settled).
    pub fn starting(partitions: impl IntoIterator<Item = (PartitionId, i64)>) -> Self {
        Position {
            partitions: partitions.into_iter().map(|(id, next)| (id, Mark { next, unsettled: BTreeSet::new() })).collect(),
            anchor: None,
        }
    }

    /// The reader got `offset`: everything before it is read.
    pub fn read(&mut self, partition: PartitionId, offset: i64) {
        let mark = self.partitions.entry(partition).or_default();
        mark.next = mark.next.max(offset + 1);
    }

    /// `offset` (read) waits to be pushed.
    pub fn hold(&mut self, partition: PartitionId, offset: i64) {
        self.read(partition, offset);
        self.partitions.entry(partition).or_default().unsettled.insert(offset);
    }

    /// `offset` is pushed (or given up).
    pub fn settle(&mut self, partition: PartitionId, offset: i64) {
        if let Some(mark) = self.partitions.get_mut(&partition) {
            mark.unsettled.remove(&offset);
        }
    }

    /// This position, taken at `anchor`.
    pub fn anchored(mut self, anchor: Anchor) -> Self {
        self.anchor = Some(anchor);
        self
    }

    pub fn anchor(&self) -> Option<Anchor> {
        self.anchor
    }

    /// Whether the event at `offset` of `partition` is settled here.
    pub fn is_settled(&self, partition: PartitionId, offset: i64) -> bool {
        self.partitions.get(&partition).is_some_and(|mark| offset < mark.next && !mark.unsettled.contains(&offset))
    }

    /// The partitions named, with the first offset not settled in each and
    /// the next one read.
    pub fn extents(&self) -> impl Iterator<Item = (PartitionId, i64, i64)> + '_ {
        self.partitions.iter().map(|(&id, mark)| (id, mark.unsettled.first().copied().unwrap_or(mark.next), mark.next))
    }

    /// The first offset of `partition` not settled here (0 for a partition
    /// it does not name).
    pub fn first_unsettled(&self, partition: PartitionId) -> i64 {
        self.partitions.get(&partition).map_or(0, |mark| mark.unsettled.first().copied().unwrap_or(mark.next))
    }

    /// What is settled in either: a subscriber who saw both has seen it.
    /// The anchor is `other`'s, or this one's if it has none.
    pub fn union(&self, other: &Position) -> Position {
        let mut partitions = self.partitions.clone();
        for (id, theirs) in &other.partitions {
            let merged = match partitions.get(id) {
                None => theirs.clone(),
                Some(ours) => {
                    let unsettled_in = |mark: &Mark, offset: i64| offset >= mark.next || mark.unsettled.contains(&offset);
                    let unsettled = ours
                        .unsettled
                        .iter()
                        .filter(|&&offset| unsettled_in(theirs, offset))
                        .chain(theirs.unsettled.iter().filter(|&&offset| unsettled_in(ours, offset)))
                        .copied()
                        .collect();
                    Mark { next: ours.next.max(theirs.next), unsettled }
                }
            };
            partitions.insert(*id, merged);
        }
        Position { partitions, anchor: other.anchor.or(self.anchor) }
    }

    /// This position cut at `until` per partition: what it settled below
    /// those offsets (partitions not in `until` are left out).
    pub fn before(&self, until: &BTreeMap<PartitionId, i64>) -> Position {
        let partitions = until
            .iter()
            .filter_map(|(id, &limit)| {
                let mark = self.partitions.get(id)?;
                let next = mark.next.min(limit);
                Some((*id, Mark { next, unsettled: mark.unsettled.range(..next).copied().collect() }))
            })
            .collect();
        Position { partitions, anchor: self.anchor }
    }

    /// The position as bytes: a version, the partitions (topic, partition,
    /// next, then the unsettled offsets as gaps below next), the anchor.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![VERSION];
        put(&mut bytes, self.partitions.len() as u64);
        for (&(topic, partition), mark) in &self.partitions {
            bytes.push(topic);
            put(&mut bytes, partition as u64);
            put(&mut bytes, mark.next as u64);
            put(&mut bytes, mark.unsettled.len() as u64);
            let mut previous = 0;
            for &offset in &mark.unsettled {
                put(&mut bytes, (offset - previous) as u64);
                previous = offset;
            }
        }
        match self.anchor {
            None => bytes.push(0),
            Some(anchor) => {
                bytes.push(1);
                bytes.push(anchor.partition.0);
                put(&mut bytes, anchor.partition.1 as u64);
                put(&mut bytes, anchor.offset as u64);
                bytes.extend_from_slice(&anchor.event.to_be_bytes());
            }
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Malformed> {
        let mut reader = Reader(bytes);
        if reader.byte()? != VERSION {
            return Err(Malformed);
        }
        let count = reader.number(MAX_PARTITIONS)?;
        let mut partitions = BTreeMap::new();
        let mut total_unsettled = 0;
        for _ in 0..count {
            let id = reader.partition()?;
            let next = reader.offset()?;
            let unsettled_count = reader.number(MAX_UNSETTLED)?;
            total_unsettled += unsettled_count;
            if total_unsettled > MAX_UNSETTLED {
                return Err(Malformed);
            }
            let mut unsettled = BTreeSet::new();
            let mut offset = 0i64;
            for index in 0..unsettled_count {
                let step = reader.offset()?;
                if index > 0 && step == 0 {
                    return Err(Malformed);
                }
                offset = offset.checked_add(step).ok_or(Malformed)?;
                unsettled.insert(offset);
            }
            if offset >= next && !unsettled.is_empty() {
                return Err(Malformed);
            }
            if partitions.insert(id, Mark { next, unsettled }).is_some() {
                return Err(Malformed);
            }
        }
        let anchor = match reader.byte()? {
            0 => None,
            1 => {
                let partition = reader.partition()?;
                let offset = reader.offset()?;
                let event = u64::from_be_bytes(reader.take(8)?.try_into().expect("8 bytes"));
                Some(Anchor { partition, offset, event })
            }
            _ => return Err(Malformed),
        };
        if !reader.0.is_empty() {
            return Err(Malformed);
        }
        Ok(Position { partitions, anchor })
    }
}

/// Appends `value` as an unsigned LEB128 varint.
fn put(bytes: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return;
        }
        bytes.push(low | 0x80);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], Malformed> {
        if self.0.len() < count {
            return Err(Malformed);
        }
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    /// A varint of at most `max`.
    fn number(&mut self, max: u64) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift).ok_or(Malformed)?;
            if byte & 0x80 == 0 {
                return if value <= max { Ok(value) } else { Err(Malformed) };
            }
        }
        Err(Malformed)
    }

    fn offset(&mut self) -> Result<i64, Malformed> {
        Ok(self.number(i64::MAX as u64)? as i64)
    }

    fn partition(&mut self) -> Result<PartitionId, Malformed> {
        let topic = self.byte()?;
        if usize::from(topic) >= READ_MODEL_TOPICS.len() {
            return Err(Malformed);
        }
        Ok((topic, self.number(i32::MAX as u64)? as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Position {
        let mut position = Position::starting([((0, 0), 10), ((1, 3), 0)]);
        position.hold((0, 0), 10);
        position.read((0, 0), 11);
        position.hold((0, 0), 12);
        position.hold((1, 3), 4);
        position.anchored(Anchor::new((0, 0), 11, Uuid::now_v7()))
    }

    #[test]
    fn a_position_survives_its_encoding() {
        let position = sample();
        assert_eq!(Position::from_bytes(&position.to_bytes()), Ok(position));
        assert_eq!(Position::from_bytes(&Position::default().to_bytes()), Ok(Position::default()));
    }

    #[test]
    fn bytes_that_are_not_a_position_are_refused() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(Position::from_bytes(&bytes[..cut]), Err(Malformed), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Position::from_bytes(&longer), Err(Malformed));
        assert_eq!(Position::from_bytes(&[2]), Err(Malformed));
        // An unknown topic.
        assert_eq!(Position::from_bytes(&[VERSION, 1, 9, 0, 0, 0, 0]), Err(Malformed));
    }

    #[test]
    fn held_offsets_are_unsettled_until_settled() {
        let mut position = sample();
        assert!(position.is_settled((0, 0), 9) && position.is_settled((0, 0), 11));
        assert!(!position.is_settled((0, 0), 10) && !position.is_settled((0, 0), 12) && !position.is_settled((0, 0), 13));
        assert!(!position.is_settled((2, 0), 0), "a partition it does not name");
        assert_eq!(position.first_unsettled((0, 0)), 10);
        position.settle((0, 0), 10);
        assert!(position.is_settled((0, 0), 10));
        assert_eq!(position.first_unsettled((0, 0)), 12);
    }

    #[test]
    fn a_union_settles_what_either_settled() {
        let mut ours = Position::starting([((0, 0), 5)]);
        ours.hold((0, 0), 5);
        ours.hold((0, 0), 6);
        let mut theirs = Position::starting([((0, 0), 4)]);
        theirs.hold((0, 0), 4);
        theirs.read((0, 0), 5);
        let union = ours.union(&theirs);
        assert!(union.is_settled((0, 0), 4), "ours settled it");
        assert!(union.is_settled((0, 0), 5), "theirs settled it");
        assert!(!union.is_settled((0, 0), 6), "neither did");
        assert!(!union.is_settled((0, 0), 7));
    }

    #[test]
    fn a_position_cut_short_keeps_only_what_it_settled_before() {
        let position = sample();
        let cut = position.before(&BTreeMap::from([((0, 0), 11), ((2, 0), 5)]));
        assert!(cut.is_settled((0, 0), 9));
        assert!(!cut.is_settled((0, 0), 10) && !cut.is_settled((0, 0), 11));
        assert!(!cut.is_settled((1, 3), 0), "not asked for");
        assert!(!cut.is_settled((2, 0), 0), "not named by the position");
    }
}
