//! The books of the assigned partitions, found by topic and partition, or by the slot
//! a request's place keeps.
//!
//! Each request is looked up three times (received, handled, finished). Keyed by
//! topic name, each look-up hashed and compared the name: some 170 instructions, a
//! fifth of the ledger's cost per request under callgrind. A book keeps its slot for
//! its whole life, so a request's place names the slot, and the two later look-ups are
//! an index and an epoch check. Finding a topic compares its name's address first:
//! the consumer and the router share one `Arc<str>` per topic (see
//! `received::Topics`), so the bytes are compared only for names from elsewhere.

use std::sync::Arc;

use foldhash::HashMap;

/// Books of type `B`, one per (topic, partition), each in a slot of its own until it
/// is removed (then the slot may hold a later book).
#[derive(Debug)]
pub(super) struct Books<B> {
    /// The books and their partitions, by slot; `None`: free.
    slots: Vec<Option<Entry<B>>>,
    /// Free slots, reused first.
    free: Vec<usize>,
    /// Each topic's partitions' slots. Few topics: searched in order.
    topics: Vec<(Arc<str>, HashMap<i32, usize>)>,
}

#[derive(Debug)]
struct Entry<B> {
    topic: Arc<str>,
    partition: i32,
    book: B,
}

impl<B> Default for Books<B> {
    fn default() -> Self {
        Books {
            slots: Vec::new(),
            free: Vec::new(),
            topics: Vec::new(),
        }
    }
}

impl<B> Books<B> {
    /// The partitions of `topic`, found by address first, then by name.
    fn partitions(&self, topic: &str) -> Option<&HashMap<i32, usize>> {
        let found = self.topics.iter().find(|(t, _)| std::ptr::eq(&**t, topic));
        found
            .or_else(|| self.topics.iter().find(|(t, _)| **t == *topic))
            .map(|(_, partitions)| partitions)
    }

    /// The slot of `topic`'s `partition`, if it has a book.
    pub(super) fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        self.partitions(topic)?.get(&partition).copied()
    }

    /// The book in `slot`, if it holds one.
    pub(super) fn get(&self, slot: usize) -> Option<&B> {
        Some(&self.slots.get(slot)?.as_ref()?.book)
    }

    /// The book in `slot`, if it holds one.
    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut B> {
        Some(&mut self.slots.get_mut(slot)?.as_mut()?.book)
    }

    /// The book of `topic`'s `partition`, if it has one.
    pub(super) fn by_name(&mut self, topic: &str, partition: i32) -> Option<&mut B> {
        let slot = self.find(topic, partition)?;
        self.get_mut(slot)
    }

    /// The book of `topic`'s `partition` and its slot, made by `new` if it has none.
    pub(super) fn open(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        new: impl FnOnce() -> B,
    ) -> (usize, &mut B) {
        let slot = match self.find(topic, partition) {
            Some(slot) => slot,
            None => self.insert(topic, partition, new()),
        };
        let entry = self.slots[slot].as_mut();
        (
            slot,
            &mut entry.expect("an indexed slot holds its book").book,
        )
    }

    /// Adds the book of `topic`'s `partition` (which has none) and returns its slot.
    fn insert(&mut self, topic: &Arc<str>, partition: i32, book: B) -> usize {
        let entry = Some(Entry {
            topic: Arc::clone(topic),
            partition,
            book,
        });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        };
        let at = self.topics.iter().position(|(t, _)| **t == **topic);
        let at = at.unwrap_or_else(|| {
            self.topics.push((Arc::clone(topic), HashMap::default()));
            self.topics.len() - 1
        });
        self.topics[at].1.insert(partition, slot);
        slot
    }

    /// Removes the book of `topic`'s `partition`, if it has one; its slot is free.
    pub(super) fn remove(&mut self, topic: &str, partition: i32) -> Option<B> {
        let at = self.topics.iter().position(|(t, _)| **t == *topic)?;
        let slot = self.topics[at].1.remove(&partition)?;
        if self.topics[at].1.is_empty() {
            self.topics.swap_remove(at);
        }
        self.free.push(slot);
        self.slots[slot].take().map(|e| e.book)
    }

    /// How many books there are.
    pub(super) fn len(&self) -> usize {
        self.topics.iter().map(|(_, p)| p.len()).sum()
    }

    /// Every book, with its topic and partition.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, i32, &B)> {
        self.slots
            .iter()
            .flatten()
            .map(|e| (&e.topic, e.partition, &e.book))
    }

    /// Every book, with its topic and partition.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&Arc<str>, i32, &mut B)> {
        self.slots
            .iter_mut()
            .flatten()
            .map(|e| (&e.topic, e.partition, &mut e.book))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Books are found by name (whichever `Arc` names the topic) and by slot; a
    /// removed book's slot holds nothing, then a later book.
    #[test]
    fn books_are_found_by_name_and_by_slot() {
        let mut books = Books::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("requests"), Arc::from("other"));
        let a0 = books.open(&a, 0, || "a0").0;
        let a1 = books.open(&a, 1, || "a1").0;
        let b0 = books.open(&b, 0, || "b0").0;
        assert_eq!(books.open(&a, 0, || "again").0, a0, "an open book is kept");
        assert_eq!(books.get(a0), Some(&"a0"));
        let elsewhere = String::from("requests");
        assert_eq!(books.find(&elsewhere, 1), Some(a1), "by name");
        assert_eq!(books.find(&a, 2), None);
        assert_eq!(books.find("unknown", 0), None);
        assert_eq!(books.len(), 3);

        assert_eq!(books.remove("requests", 0), Some("a0"));
        assert_eq!(books.remove("requests", 0), None);
        assert_eq!(books.get(a0), None, "the removed book's slot");
        assert_eq!(books.find(&a, 0), None);
        let b1 = books.open(&b, 1, || "b1").0;
        assert_eq!(b1, a0, "the free slot, reused");
        assert_eq!(books.by_name("other", 1), Some(&mut "b1"));

        let mut all: Vec<_> = books
            .iter()
            .map(|(t, p, b)| (t.to_string(), p, *b))
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                ("other".into(), 0, "b0"),
                ("other".into(), 1, "b1"),
                ("requests".into(), 1, "a1"),
            ]
        );
        assert_eq!(books.remove("requests", 1), Some("a1"));
        assert_eq!(books.find("requests", 1), None, "the topic is gone");
        assert_eq!(
            books.find("other", 0),
            Some(b0),
            "the other topic, moved in the index"
        );
        assert_eq!(books.find(&b, 1), Some(b1));
        assert_eq!(books.get(b0), Some(&"b0"));
        assert_eq!(books.len(), 2);
    }
}
