//! The mask's fast path: whether one character may come next, worked out from the state without
//! changing it, for the moves nearly every step consists of (an organic atom, the second letter
//! of Cl/Br, a bond, a branch, a ring-closure digit, `.`, `%`, the `[` of a common bracket atom).
//!
//! Testing every token by reading it on a copy of the row's state (`GrammarState::push`) cost
//! about 9 % of grammar-constrained sampling; most of it was the copies. Each check here mirrors
//! one arm of `GrammarState::read` plus `completable`, and answers `None` where only the copy can
//! tell (inside a bracket atom, after `%`, a Kekulé check of an aromatic system that a ring
//! closure closes); the caller then reads the character on a copy. A test
//! walks random strings through the grammar and checks every answer against the copy's.

use std::cell::Cell;

use super::{bond_order, organic, GrammarState, Mode, PendingBond, SmilesGrammar, MAX_TRACKED, UNLIMITED};

/// How the mask decides a token, worked out once per vocabulary.
#[derive(Debug, Clone, Copy)]
pub(super) enum TokenKind {
    /// PAD, BOS, EOS: never a character of the string.
    Special,
    /// An organic-subset atom: its largest valence, and whether it is aromatic.
    Organic { max: u8, aromatic: bool },
    /// `[`
    OpenBracket,
    /// Any other single character.
    Char(char),
    /// Several characters: read on a copy.
    Text,
}

impl TokenKind {
    pub(super) fn of(chars: &[char]) -> Self {
        match *chars {
            [] => Self::Special,
            ['['] => Self::OpenBracket,
            [c] => match organic(c) {
                Some((max, _, aromatic)) => Self::Organic { max, aromatic },
                None => Self::Char(c),
            },
            _ => Self::Text,
        }
    }
}

/// What the atom checks of one mask share. An atom joins the current atom the same way whatever
/// its element, so the Kekulé answer for the current atom's aromatic system depends only on
/// whether the new atom links to it aromatically; up to 18 atom checks per mask (the organic
/// atoms and the `[` candidates) would otherwise search that system each.
#[derive(Default)]
pub(super) struct MaskMemo {
    /// Whether the current atom's aromatic system keeps a Kekulé structure after an atom joins
    /// it, by aromatic link (false, true), once computed.
    /// None inside: only a copy can tell (a molecule too large for the search's bit set).
    kekule: [Cell<Option<Option<bool>>>; 2],
}

impl GrammarState {
    /// What `push(c)` would answer (the state unchanged), or None where only a copy can tell.
    /// `[` is left to [`SmilesGrammar::bracket_lookahead`], which knows the vocabulary.
    pub(super) fn lookahead(&self, c: char, memo: &MaskMemo) -> Option<bool> {
        let mode = self.mode;
        match mode {
            Mode::Ended => return Some(false),
            Mode::InBracket(_) | Mode::Percent { .. } => return None,
            _ => {}
        }
        if let Some((max, _, aromatic)) = organic(c) {
            return self.organic_lookahead(max, aromatic, memo);
        }
        if c == 'l' || c == 'r' {
            // Only the second letter of Cl / Br: the atom just read becomes a halogen (largest
            // valence 1), as `read` does it, then `completable`.
            let first = if c == 'l' { 'C' } else { 'B' };
            if self.two_letter != Some(first) || mode != Mode::AfterAtom {
                return Some(false);
            }
            let cur = self.current?;
            let used = self.atoms[cur as usize].used;
            let room = |x: u16| self.atoms[x as usize].room();
            return Some(
                used <= 1 && completable_after(!self.rings.is_empty(), 1 - used, &self.branches, room),
            );
        }
        let after_atom = matches!(mode, Mode::AfterAtom | Mode::AfterClose);
        if let Some(order) = bond_order(c) {
            return Some((after_atom || mode == Mode::AfterOpen) && self.room(self.current) >= order);
        }
        // A bond written right after an atom, which a ring-closure digit (or `%`) may take.
        let written = match mode {
            Mode::AfterBond { bond, ring_ok: true } => Some(bond),
            _ => None,
        };
        match c {
            '[' => None,
            '(' => Some(after_atom && self.current.is_some_and(|a| self.room(Some(a)) > 0)),
            ')' if after_atom => self.close_branch_lookahead(),
            '.' if after_atom && self.branches.is_empty() => match self.current {
                None => Some(true),
                // The current atom leaves: no other atom changes.
                Some(p) => self
                    .kekule_lookahead(p, false, |x| self.atoms[x as usize].open_rings > 0)
                    .or_else(|| self.closed_kekule(p, None)),
            },
            '%' => Some(mode == Mode::AfterAtom || written.is_some()),
            '0'..='9' if mode == Mode::AfterAtom || written.is_some() => {
                self.ring_lookahead(c as u8 - b'0', written)
            }
            _ => Some(false),
        }
    }

    /// [`GrammarState::lookahead`] of an organic-subset atom (largest valence `max`).
    pub(super) fn organic_lookahead(&self, max: u8, aromatic: bool, memo: &MaskMemo) -> Option<bool> {
        match self.mode {
            Mode::Ended => Some(false),
            Mode::InBracket(_) | Mode::Percent { .. } => None,
            _ => match self.pending_bond() {
                Some(bond) => self.atom_lookahead(max, aromatic, bond, memo),
                None => Some(false),
            },
        }
    }

    /// `add_atom` of an organic atom (largest valence `max`) joined by `bond`, then `completable`.
    /// `memo` must belong to this state and this `bond` (one mask).
    pub(super) fn atom_lookahead(
        &self,
        max: u8,
        aromatic: bool,
        bond: Option<PendingBond>,
        memo: &MaskMemo,
    ) -> Option<bool> {
        let order = bond.map_or(0, |b| b.order);
        if (order > 0 && self.room(self.current) < order) || order > max {
            return Some(false);
        }
        let Some(prev) = self.current else {
            return Some(true); // the first atom of a component: nothing else changes
        };
        let prev_atom = &self.atoms[prev as usize];
        // After the move the new atom is current: `prev` stays live only as a branch point or
        // with an open ring closure, and an aromatic bond to the new atom keeps its system open.
        let aromatic_link = bond.is_some_and(|b| b.may_be_aromatic) && aromatic && prev_atom.aromatic;
        let cached = &memo.kekule[usize::from(aromatic_link)];
        let kekule = match cached.get() {
            Some(answer) => answer,
            None => {
                let answer = self
                    .kekule_lookahead(prev, aromatic_link, |x| {
                        self.branches.contains(&x) || self.atoms[x as usize].open_rings > 0
                    })
                    // `prev`'s system closes with this move (so the link is not aromatic): its
                    // matching, with the new bond's order on `prev`, as `add_atom` checks.
                    .or_else(|| self.closed_kekule(prev, Some(order)));
                cached.set(Some(answer));
                answer
            }
        }?;
        let room = |x: u16| {
            let used = self.atoms[x as usize]
                .used
                .saturating_add(if x == prev { order } else { 0 });
            self.atoms[x as usize].max.saturating_sub(used)
        };
        let rings_open = !self.rings.is_empty();
        Some(kekule && completable_after(rings_open, max - order, &self.branches, room))
    }

    /// `)`: the branch point becomes current again.
    fn close_branch_lookahead(&self) -> Option<bool> {
        let (&point, outer) = match self.branches.split_last() {
            Some(split) => split,
            None => return Some(false),
        };
        let kekule = match self.current {
            None => true,
            Some(prev) => self
                .kekule_lookahead(prev, false, |x| {
                    x == point || outer.contains(&x) || self.atoms[x as usize].open_rings > 0
                })
                .or_else(|| self.closed_kekule(prev, None))?,
        };
        let room = |x: u16| self.atoms[x as usize].room();
        Some(kekule && completable_after(!self.rings.is_empty(), room(point), outer, room))
    }

    /// Ring-closure `label` on the current atom (`GrammarState::ring`), then `completable`.
    fn ring_lookahead(&self, label: u8, written: Option<PendingBond>) -> Option<bool> {
        let Some(cur) = self.current else {
            return Some(false);
        };
        let Some(i) = self.rings.iter().position(|r| r.0 == label) else {
            // Opening: the current atom reserves the bond's order.
            let order = written.map_or(1, |b| b.order);
            if self.room(Some(cur)) < order {
                return Some(false);
            }
            let room = |x: u16| {
                let used = self.atoms[x as usize]
                    .used
                    .saturating_add(if x == cur { order } else { 0 });
                self.atoms[x as usize].max.saturating_sub(used)
            };
            return Some(completable_after(true, room(cur), &self.branches, room));
        };
        let (_, other, opened) = self.rings[i];
        if other == cur || self.ring_pairs.contains(&(other.min(cur), other.max(cur))) {
            return Some(false);
        }
        let bond = match (opened, written) {
            (Some(a), Some(b)) if a.order != b.order => return Some(false),
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => super::IMPLICIT,
        };
        let reserved = opened.map_or(1, |b| b.order);
        if self.room(Some(cur)) < bond.order || self.room(Some(other)) < bond.order.saturating_sub(reserved) {
            return Some(false);
        }
        let (a, b) = (&self.atoms[other as usize], &self.atoms[cur as usize]);
        let aromatic_link = bond.may_be_aromatic && a.aromatic && b.aromatic;
        let kekule = self.kekule_lookahead(other, aromatic_link, |x| {
            let open_rings = self.atoms[x as usize].open_rings - u8::from(x == other);
            x == cur || self.branches.contains(&x) || open_rings > 0
        })?;
        let room = |x: u16| {
            let atom = &self.atoms[x as usize];
            let used = match x {
                _ if x == cur => atom.used.saturating_add(bond.order),
                _ if x == other => (atom.used - reserved).saturating_add(bond.order),
                _ => atom.used,
            };
            atom.max.saturating_sub(used)
        };
        Some(kekule && completable_after(self.rings.len() > 1, room(cur), &self.branches, room))
    }

    /// The matching of `a`'s aromatic system after a move that leaves no atom of it able to gain
    /// bonds (`kekule_lookahead` answered None), `a` taking a non-aromatic bond of `order` first
    /// where one is given: what `kekulizable_from(a, false)` computes after the move. None where
    /// the molecule is too large for that search to have run.
    fn closed_kekule(&self, a: u16, order: Option<u8>) -> Option<bool> {
        (self.atoms.len() <= MAX_TRACKED).then(|| self.closed_system_kekulizes(a, order))
    }

    /// `kekulizable_from(a, false)` after a move, where it is cheap: true while `a`'s aromatic
    /// system (over the bonds before the move, plus an aromatic bond the move makes to the new
    /// current atom, `aromatic_link`) still has an atom that can gain bonds (`live_after`);
    /// None when the system has closed and needs its matching (`GrammarState::kekulizable_from`
    /// with `live` as `live_after` is this, then the matching).
    pub(super) fn kekule_lookahead(
        &self,
        a: u16,
        aromatic_link: bool,
        live_after: impl Fn(u16) -> bool,
    ) -> Option<bool> {
        if !self.atoms[a as usize].aromatic || aromatic_link || live_after(a) {
            return Some(true);
        }
        if self.atoms.len() > MAX_TRACKED {
            return None;
        }
        // Depth-first over aromatic bonds, with a bit set for the atoms seen.
        let mut seen = 1u128 << a;
        let mut stack = [0u16; MAX_TRACKED];
        let (mut top, mut x) = (0, a);
        loop {
            for &(p, q) in &self.aromatic_edges {
                let y = match (p == x, q == x) {
                    (true, _) => q,
                    (_, true) => p,
                    _ => continue,
                };
                if seen & (1u128 << y) == 0 {
                    if live_after(y) {
                        return Some(true);
                    }
                    seen |= 1u128 << y;
                    stack[top] = y;
                    top += 1;
                }
            }
            if top == 0 {
                return None;
            }
            top -= 1;
            x = stack[top];
        }
    }
}

/// `completable` after a move to an atom: with ring closures still open (`rings_open`), the new
/// current atom has valence left (`current_room`), or a branch point does (`room` after the move).
fn completable_after(rings_open: bool, current_room: u8, branches: &[u16], room: impl Fn(u16) -> u8) -> bool {
    !rings_open || current_room > 0 || branches.iter().any(|&b| room(b) > 0)
}

impl SmilesGrammar {
    /// Whether token `id` may follow `state`, from the state alone where that is cheap.
    /// `memo` is shared by the tokens of one mask (one state).
    pub(super) fn lookahead(&self, state: &GrammarState, id: usize, memo: &MaskMemo) -> Option<bool> {
        match self.kinds[id] {
            TokenKind::Special => Some(false),
            TokenKind::Organic { max, aromatic } => state.organic_lookahead(max, aromatic, memo),
            TokenKind::OpenBracket => self.bracket_lookahead(state, memo),
            TokenKind::Char(c) => state.lookahead(c, memo),
            TokenKind::Text => None,
        }
    }

    /// `[`: allowed where the bond into it fits and one of the common elements, written plain,
    /// could follow (`bracket_finishable` of an empty symbol); a plain `[C]`, `[n]`, ... joins
    /// exactly as the organic atom does (same largest valence, Kekulé valence and aromaticity).
    fn bracket_lookahead(&self, state: &GrammarState, memo: &MaskMemo) -> Option<bool> {
        let Some(bond) = state.pending_bond() else {
            return Some(false);
        };
        if bond.is_some_and(|b| state.room(state.current) < b.order) {
            return Some(false);
        }
        let mut unknown = false;
        for symbol in &self.bracket_candidates {
            let c = symbol.chars().next().expect("one-letter candidates");
            let (max, _, aromatic) = organic(c).expect("candidates are organic-subset atoms");
            debug_assert!(max != UNLIMITED);
            match state.atom_lookahead(max, aromatic, bond, memo) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => unknown = true,
            }
        }
        if unknown {
            None
        } else {
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{Vocab, EOS};

    /// Every answer of the fast path equals reading the token on a copy, on states reached by
    /// random walks through the grammar over the shipped prior's vocabulary (plus `%`, `.`, `+`).
    #[test]
    fn lookahead_agrees_with_reading_a_copy() {
        let vocab = Vocab::from_corpus(
            ["#()-123456=BCFHNOS[]clnors", "C%10CC.[NH4+]/\\@:$*"],
            crate::TokenMode::Char,
        );
        let g = SmilesGrammar::new(&vocab);
        let mut rng = crate::rng::Rng::new(11);
        let (mut decided, mut deferred) = (0usize, 0usize);
        let mut allowed = vec![false; vocab.len()];
        for _ in 0..3000 {
            let mut state = GrammarState::new();
            for _ in 0..80 {
                let memo = MaskMemo::default(); // shared by the tokens, as in a mask
                for (id, chars) in g.chars.iter().enumerate().skip(EOS as usize + 1) {
                    let mut copy = state.clone();
                    let by_copy = chars.iter().all(|&c| copy.push(c)) && g.bracket_finishable(&copy);
                    match g.lookahead(&state, id, &memo) {
                        Some(fast) => {
                            decided += 1;
                            let text: String = chars.iter().collect();
                            assert_eq!(fast, by_copy, "token {text:?} after {state:?}");
                        }
                        None if matches!(state.mode, Mode::InBracket(_) | Mode::Percent { .. }) => {}
                        None => deferred += 1,
                    }
                }
                // Walk on by a random allowed token.
                if !g.random_step(&mut state, &mut allowed, &mut rng) {
                    break;
                }
            }
        }
        // Outside bracket atoms and `%` labels, the fast path must carry the load.
        assert!(decided > 10 * deferred, "{decided} decided, {deferred} deferred");
    }
}
