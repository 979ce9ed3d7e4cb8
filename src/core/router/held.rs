//! The conversations the router holds in memory, each in a numbered slot.
//!
//! Open work is the router's whole memory (100k open conversations on a
//! busy team), so this is laid out for size: each conversation once, in
//! fixed-size chunks that never move or double; the lookups by id and by
//! thread are tables of slot numbers (4 bytes each) that read the key from
//! the conversation itself; timers name a slot, not a copy of the id. A slot
//! is reused once its conversation leaves memory (with its timers).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::core::router::Conversation;

/// Slots per chunk: growing adds a chunk, never copies the others.
const CHUNK: usize = 1024;

#[derive(Default)]
pub struct Held {
    chunks: Vec<Vec<Option<Conversation>>>,
    /// Slots emptied by [`Held::remove`], reused first.
    free: Vec<u32>,
    by_id: HashTable<u32>,
    /// The newest conversation in memory of each thread (any channel).
    by_thread: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Held {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The slot of the conversation `id`.
    pub fn slot(&self, id: &str) -> Option<u32> {
        let h = self.hasher.hash_one(id);
        self.by_id.find(h, |&s| self.at(s).id == id).copied()
    }

    /// The conversation in `slot` (which must be taken).
    pub fn at(&self, slot: u32) -> &Conversation {
        self.chunks[slot as usize / CHUNK][slot as usize % CHUNK].as_ref().expect("a taken slot")
    }

    pub fn get(&self, id: &str) -> Option<&Conversation> {
        self.slot(id).map(|s| self.at(s))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Conversation> {
        let s = self.slot(id)? as usize;
        self.chunks[s / CHUNK][s % CHUNK].as_mut()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.slot(id).is_some()
    }

    /// Stores `conversation` (replacing the one with its id, if held) and
    /// returns its slot. The thread index is left to the caller.
    pub fn insert(&mut self, conversation: Conversation) -> u32 {
        if let Some(s) = self.slot(&conversation.id) {
            *self.cell(s) = Some(conversation);
            return s;
        }
        let h = self.hasher.hash_one(&conversation.id);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let full = (self.chunks.len() - 1) * CHUNK;
                let last = self.chunks.last_mut().expect("pushed above");
                last.push(None);
                u32::try_from(full + last.len() - 1).expect("fewer than 2^32 slots")
            }
        };
        *self.cell(slot) = Some(conversation);
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.by_id.insert_unique(h, slot, |&s| hasher.hash_one(&Self::taken(chunks, s).id));
        slot
    }

    /// Takes the conversation `id` out of memory, and out of the thread
    /// index if it was its thread's newest.
    pub fn remove(&mut self, id: &str) -> Option<Conversation> {
        let h = self.hasher.hash_one(id);
        let chunks = &self.chunks;
        let slot = match self.by_id.find_entry(h, |&s| Self::taken(chunks, s).id == id) {
            Ok(entry) => entry.remove().0,
            Err(_) => return None,
        };
        let thread_hash = self.hasher.hash_one(&self.at(slot).thread);
        if let Ok(entry) = self.by_thread.find_entry(thread_hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push(slot);
        self.cell(slot).take()
    }

    /// Every conversation held, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Conversation> {
        self.chunks.iter().flatten().flatten()
    }

    /// The id of the newest conversation held on `thread`.
    pub fn newest_of(&self, thread: &str) -> Option<&str> {
        let h = self.hasher.hash_one(thread);
        self.by_thread.find(h, |&s| self.at(s).thread == thread).map(|&s| self.at(s).id.as_str())
    }

    /// Makes `slot`'s conversation its thread's newest: always (`replace`),
    /// or only when the thread has none held.
    pub fn set_newest(&mut self, slot: u32, replace: bool) {
        let h = self.hasher.hash_one(&self.at(slot).thread);
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        let thread = &Self::taken(chunks, slot).thread;
        let entry = self.by_thread.entry(
            h,
            |&s| &Self::taken(chunks, s).thread == thread,
            |&s| hasher.hash_one(&Self::taken(chunks, s).thread),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut e) if replace => *e.get_mut() = slot,
            hashbrown::hash_table::Entry::Occupied(_) => {}
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
    }

    fn cell(&mut self, slot: u32) -> &mut Option<Conversation> {
        &mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    fn taken(chunks: &[Vec<Option<Conversation>>], slot: u32) -> &Conversation {
        chunks[slot as usize / CHUNK][slot as usize % CHUNK].as_ref().expect("a taken slot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::router::Channel;
    use jiff::Timestamp;

    fn conv(channel: Channel, thread: &str) -> Conversation {
        Conversation::blank(channel, thread, Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn finds_by_id_and_thread_and_reuses_slots() {
        let mut held = Held::default();
        let n = 3 * CHUNK + 7;
        for i in 0..n {
            let s = held.insert(conv(Channel::Email, &format!("t{i}")));
            held.set_newest(s, false);
        }
        assert_eq!(held.len(), n);
        assert_eq!(held.get("email:t2050").map(|c| c.thread.as_str()), Some("t2050"));
        assert_eq!(held.newest_of("t5"), Some("email:t5"));
        // The same thread on another channel, newer.
        let s = held.insert(conv(Channel::Discord, "t5"));
        held.set_newest(s, false);
        assert_eq!(held.newest_of("t5"), Some("email:t5"), "kept when not replacing");
        held.set_newest(s, true);
        assert_eq!(held.newest_of("t5"), Some("discord:t5"));
        // Removing the newest leaves the thread without one; the other stays.
        assert_eq!(held.remove("discord:t5").map(|c| c.id), Some("discord:t5".to_string()));
        assert_eq!(held.newest_of("t5"), None);
        assert!(held.contains("email:t5"));
        assert_eq!(held.remove("discord:t5"), None);
        // Removing one that is not the newest leaves the index alone.
        let old = held.slot("email:t9").unwrap();
        held.remove("email:t9");
        let again = held.insert(conv(Channel::Email, "fresh"));
        assert_eq!(again, old, "an emptied slot is reused");
        assert_eq!(held.at(again).id, "email:fresh");
        assert_eq!(held.values().count(), n);
        assert_eq!(held.chunks.len(), 4, "no chunk added for a reused slot");
        // Replacing keeps the slot.
        let mut c = conv(Channel::Email, "fresh");
        c.waits = 9;
        assert_eq!(held.insert(c), again);
        assert_eq!(held.get("email:fresh").unwrap().waits, 9);
        held.get_mut("email:fresh").unwrap().waits = 10;
        assert_eq!(held.at(again).waits, 10);
    }
}
