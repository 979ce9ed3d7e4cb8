//! The one pass over a reply that answers most of a rule set's questions:
//! every `require` and `forbid` pattern in one lazy DFA, searched for all
//! their matches at once. It says which patterns match anywhere and where
//! each forbidden pattern's matches end; a reverse DFA per forbidden
//! pattern then finds where a match ending there starts, reading only the
//! match. Before this, a forbidden phrase that matched was searched for
//! again from the start of the reply, a fifth of the checker's time.
//!
//! The caches the DFAs need while searching are kept in a small pool, so a
//! shared rule set checks replies on any number of threads.

use std::sync::Mutex;

use regex::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA, OverlappingState};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{Anchored, Input, MatchKind};

/// How many match ends are kept per forbidden pattern; past that the
/// checker searches on from the last one with the pattern's own regex.
pub(super) const ENDS_KEPT: usize = 32;

/// Room for the set's lazy DFA: it keeps the states real replies visit
/// (~17 MB after 100,000 generated replies); with 16 MB it kept rebuilding
/// them.
const SET_CACHE: usize = 64 << 20;

#[derive(Debug)]
pub(super) struct OnePass {
    set: DFA,
    /// By slot: the reverse DFA of a forbidden pattern (`None` for a
    /// `require`).
    reverse: Vec<Option<DFA>>,
    pool: Mutex<Vec<Scratch>>,
}

#[derive(Debug)]
pub(super) struct Scratch {
    set: Cache,
    reverse: Vec<Option<Cache>>,
    pub(super) found: Found,
}

/// What the pass found in one reply, by slot.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub(super) matched: Vec<bool>,
    /// The first [`ENDS_KEPT`] byte offsets where a match of a forbidden
    /// pattern ends, ascending.
    pub(super) ends: Vec<Vec<usize>>,
}

impl OnePass {
    /// The pass over `patterns` (one per slot; `forbid[slot]` says which
    /// are forbidden and need locating). `None` when the patterns are too
    /// large for it: each is then searched on its own.
    pub(super) fn new(patterns: &[String], forbid: &[bool]) -> Option<OnePass> {
        let nfa = thompson::Config::new().which_captures(WhichCaptures::None).nfa_size_limit(Some(64 << 20));
        let set = DFA::builder()
            // Word boundaries are ASCII (see `RuleSet`); were one Unicode,
            // the DFA would stop at non-ASCII text and such a reply would be
            // searched pattern by pattern.
            .configure(DFA::config().match_kind(MatchKind::All).cache_capacity(SET_CACHE).unicode_word_boundary(true))
            .thompson(nfa.clone())
            .build_many(patterns)
            .ok()?;
        // Read back from an end, the longest match: its leftmost start.
        let reverse = patterns
            .iter()
            .zip(forbid)
            .map(|(pattern, &forbid)| {
                if !forbid {
                    return Some(None);
                }
                DFA::builder()
                    .configure(DFA::config().match_kind(MatchKind::All).cache_capacity(8 << 20))
                    .thompson(nfa.clone().reverse(true))
                    .build(pattern)
                    .ok()
                    .map(Some)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(OnePass { set, reverse, pool: Mutex::new(Vec::new()) })
    }

    /// Scratch space for one check, from the pool (give it back with
    /// [`OnePass::put`]).
    pub(super) fn take(&self) -> Scratch {
        let reused = self.pool.lock().map(|mut pool| pool.pop()).unwrap_or(None);
        reused.unwrap_or_else(|| Scratch {
            set: self.set.create_cache(),
            reverse: self.reverse.iter().map(|dfa| dfa.as_ref().map(DFA::create_cache)).collect(),
            found: Found::default(),
        })
    }

    pub(super) fn put(&self, scratch: Scratch) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(scratch);
        }
    }

    /// Searches `text`, filling `scratch.found`. `false` when the lazy DFA
    /// could not finish (it never gives up with this configuration, but a
    /// rule may need a Unicode word boundary it cannot do): the caller then
    /// searches each pattern on its own.
    pub(super) fn search(&self, text: &str, scratch: &mut Scratch) -> bool {
        let slots = self.reverse.len();
        let found = &mut scratch.found;
        found.matched.clear();
        found.matched.resize(slots, false);
        found.ends.resize_with(slots, Vec::new);
        found.ends.iter_mut().for_each(Vec::clear);
        let input = Input::new(text);
        let mut state = OverlappingState::start();
        loop {
            if self.set.try_search_overlapping_fwd(&mut scratch.set, &input, &mut state).is_err() {
                return false;
            }
            let Some(m) = state.get_match() else { return true };
            let slot = m.pattern().as_usize();
            found.matched[slot] = true;
            let ends = &mut found.ends[slot];
            if self.reverse[slot].is_some() && ends.len() < ENDS_KEPT && ends.last() != Some(&m.offset()) {
                ends.push(m.offset());
            }
        }
    }

    /// The first match of forbidden pattern `slot` (`re`) that `held`
    /// accepts, from the `ends` the pass found: each is read back to its
    /// start, and from there forwards to where the pattern's own match from
    /// that start ends ("!!!", not "!!"). `Some(None)`: there is none;
    /// `None`: the pass kept too few ends to say, search the reply.
    pub(super) fn locate(
        &self,
        scratch: &mut Scratch,
        ends: &[usize],
        slot: usize,
        re: &Regex,
        text: &str,
        held: impl Fn(&(usize, usize)) -> bool,
    ) -> Option<Option<(usize, usize)>> {
        let hit = ends
            .iter()
            .filter(|&&e| text.is_char_boundary(e))
            .filter_map(|&e| {
                let s = self.start_of(scratch, slot, text, e)?;
                let e = re.find_at(text, s).filter(|m| m.start() == s).map_or(e, |m| m.end());
                text.is_char_boundary(s).then_some((s, e))
            })
            .find(held);
        Some(hit).filter(|hit| hit.is_some() || ends.len() < ENDS_KEPT)
    }

    /// Where the leftmost match of forbidden pattern `slot` that ends at
    /// `end` starts (`None` if the reverse search cannot say).
    fn start_of(&self, scratch: &mut Scratch, slot: usize, text: &str, end: usize) -> Option<usize> {
        let dfa = self.reverse.get(slot)?.as_ref()?;
        let cache = scratch.reverse.get_mut(slot)?.as_mut()?;
        let input = Input::new(text).range(..end).anchored(Anchored::Yes);
        dfa.try_search_rev(cache, &input).ok().flatten().map(|m| m.offset())
    }
}
